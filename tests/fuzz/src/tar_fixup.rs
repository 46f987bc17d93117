//! Recomputes the checksum of every header of a tar stream, walking it the
//! way the `tar` crate does (PAX `size` overrides, GNU sparse extension
//! blocks). Random mutations almost always break a header checksum, and a
//! checksum mismatch ends the archive before the unpacker sees an entry;
//! with the checksums fixed, mutated headers reach the unpacker.

/// Size of a tar block.
pub const BLOCK: usize = 512;

const CKSUM: std::ops::Range<usize> = 148..156;
const SIZE: std::ops::Range<usize> = 124..136;
const TYPEFLAG: usize = 156;
/// `isextended` of a GNU sparse header, then of each extension block.
const GNU_ISEXTENDED: usize = 482;
const EXT_ISEXTENDED: usize = 504;

/// Fixes every header checksum of the tar stream in `data`, in place.
pub fn fix_checksums(data: &mut [u8]) {
    let mut pos = 0usize;
    let mut pax_size: Option<u64> = None;
    while let Some(block) = data.get_mut(pos..pos + BLOCK) {
        if block.iter().all(|b| *b == 0) {
            pos += BLOCK;
            continue;
        }
        set_checksum(block);
        let kind = block[TYPEFLAG];
        let is_extension = matches!(kind, b'x' | b'g' | b'L' | b'K');
        let mut size = entry_size(block);
        if !is_extension {
            if let Some(s) = pax_size.take() {
                size = s;
            }
        }
        let mut extended = kind == b'S' && block[GNU_ISEXTENDED] != 0;
        pos += BLOCK;
        while extended {
            match data.get(pos..pos + BLOCK) {
                Some(ext) => extended = ext[EXT_ISEXTENDED] != 0,
                None => return,
            }
            pos += BLOCK;
        }
        let Some(len) = usize::try_from(size).ok().and_then(round_up) else {
            return;
        };
        if kind == b'x' {
            if let Some(body) = data.get(pos..pos.saturating_add(len)) {
                pax_size = pax_value(body, b"size");
            }
        }
        pos = match pos.checked_add(len) {
            Some(p) => p,
            None => return,
        };
    }
}

fn round_up(n: usize) -> Option<usize> {
    n.checked_add(BLOCK - 1).map(|n| n / BLOCK * BLOCK)
}

/// Writes the checksum of `block` (its checksum field counted as spaces),
/// six octal digits, NUL, space, as GNU tar does.
pub fn set_checksum(block: &mut [u8]) {
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if CKSUM.contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    let text = format!("{sum:06o}\0 ");
    for (d, s) in block[CKSUM].iter_mut().zip(text.bytes()) {
        *d = s;
    }
}

/// The size field: octal text, or big-endian binary when its top bit is set.
fn entry_size(block: &[u8]) -> u64 {
    let field = &block[SIZE];
    if field[0] & 0x80 != 0 {
        return field[4..]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    }
    let text = String::from_utf8_lossy(field);
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(digits, 8).unwrap_or(0)
}

/// The value of `key` in PAX records (`LEN key=value\n`), as a number.
fn pax_value(body: &[u8], key: &[u8]) -> Option<u64> {
    let mut rest = body;
    let mut found = None;
    while let Some(space) = rest.iter().position(|b| *b == b' ') {
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = rest.get(space + 1..len)?;
        if let Some(value) = record.strip_prefix(key).and_then(|r| r.strip_prefix(b"=")) {
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            found = std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = rest.get(len..)?;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        let size = format!("{size:011o}");
        h[SIZE.start..SIZE.start + 11].copy_from_slice(size.as_bytes());
        h[TYPEFLAG] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h
    }

    #[test]
    fn fixed_archive_reads_back() {
        let mut data = header("a", 3, b'0');
        let mut body = b"abc".to_vec();
        body.resize(BLOCK, 0);
        data.extend(body);
        data.extend(header("b", 0, b'0'));
        data.extend(vec![0u8; 2 * BLOCK]);
        fix_checksums(&mut data);
        let mut archive = tar::Archive::new(&data[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn pax_size_is_followed() {
        let record = b"12 size=600\n";
        let mut data = header("pax", record.len(), b'x');
        let mut body = record.to_vec();
        body.resize(BLOCK, 0);
        data.extend(body);
        data.extend(header("big", 0, b'0'));
        data.extend(vec![7u8; 2 * BLOCK]);
        data.extend(header("next", 0, b'0'));
        fix_checksums(&mut data);
        // The 600 bytes of "big" are data, not headers: left alone.
        assert!(data[3 * BLOCK..5 * BLOCK].iter().all(|b| *b == 7));
        let next = &data[5 * BLOCK..6 * BLOCK];
        let mut expect = next.to_vec();
        set_checksum(&mut expect);
        assert_eq!(next, &expect[..]);
        assert_ne!(&next[CKSUM], &[0u8; 8]);
    }
}
