//! Resolving an image's `User` (`name|uid[:group|gid]`) via the image's
//! own `/etc/passwd` and `/etc/group`.

/// A resolved process identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership).
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(GroupEntry {
            name: f.first()?,
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// Parse a numeric id; `Ok(None)` if not numeric, error if out of range.
fn numeric_id(s: &str, what: &str) -> Result<Option<u32>, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        // (uid_t)-1 means "no change" to the kernel and is never valid.
        Ok(v) if v < u64::from(u32::MAX) => Ok(Some(v as u32)),
        _ => Err(format!("{what} {s} is out of range (0..{})", u32::MAX - 1)),
    }
}

/// Resolve `spec` against the image's passwd/group contents (either may be
/// missing). Errors are human-readable reasons.
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, String> {
    let spec = spec.trim();
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let (uid, mut gid, name) = if user.is_empty() {
        (0, 0, Some("root".to_string()))
    } else if let Some(uid) = numeric_id(user, "uid")? {
        match passwd_entries(passwd).find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.to_string())),
            None => (uid, 0, None),
        }
    } else {
        let e = passwd_entries(passwd)
            .find(|e| e.name == user)
            .ok_or_else(|| format!("user {user:?} not found in the image's /etc/passwd"))?;
        (e.uid, e.gid, Some(user.to_string()))
    };
    let mut additional_gids = Vec::new();
    match grp {
        Some(g) if !g.is_empty() => {
            gid = match numeric_id(g, "gid")? {
                Some(gid) => gid,
                None => {
                    group_entries(group)
                        .find(|e| e.name == g)
                        .ok_or_else(|| format!("group {g:?} not found in the image's /etc/group"))?
                        .gid
                }
            }
        }
        _ => {
            if let Some(name) = &name {
                for e in group_entries(group) {
                    if e.members.contains(&name.as_str())
                        && e.gid != gid
                        && !additional_gids.contains(&e.gid)
                    {
                        additional_gids.push(e.gid);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:34:\nadm:x:4:www\nstaff:x:50:www,root\n";

    #[test]
    fn resolves_names_and_numbers() {
        let r = resolve("www", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (33, 34));
        assert_eq!(r.additional_gids, vec![4, 50]);
        let r = resolve("33:staff", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (33, 50));
        assert!(r.additional_gids.is_empty());
        let r = resolve("1000:1000", None, None).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        let r = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (0, 0, vec![50]));
        assert!(resolve("nobody", Some(PASSWD), Some(GROUP)).is_err());
        assert!(resolve("www:nogroup", Some(PASSWD), Some(GROUP)).is_err());
        assert!(resolve("4294967295", None, None).is_err());
        assert!(resolve("1:99999999999", None, None).is_err());
    }
}
