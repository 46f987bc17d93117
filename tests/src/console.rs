//! Parsing what a guest prints on its serial console.

/// The agent's ready line (TEAM contract 4):
/// `vmrun-agent: ready cpus=<n> memory_kib=<n> kernel=<uname -r>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyLine {
    /// Online CPUs the guest sees.
    pub cpus: u32,
    /// The guest's MemTotal in KiB.
    pub memory_kib: u64,
    /// The guest kernel's release.
    pub kernel: String,
}

/// The prefix every ready line starts with.
pub const READY_PREFIX: &str = "vmrun-agent: ready ";

impl ReadyLine {
    /// Parses one line; `None` if it is not a well-formed ready line.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim_end_matches('\r').strip_prefix(READY_PREFIX)?;
        let (mut cpus, mut memory_kib, mut kernel) = (None, None, None);
        for word in rest.split_whitespace() {
            let (key, value) = word.split_once('=')?;
            match key {
                "cpus" => cpus = Some(value.parse().ok()?),
                "memory_kib" => memory_kib = Some(value.parse().ok()?),
                "kernel" if !value.is_empty() => kernel = Some(value.to_string()),
                _ => return None,
            }
        }
        Some(Self {
            cpus: cpus?,
            memory_kib: memory_kib?,
            kernel: kernel?,
        })
    }

    /// All ready lines in a console transcript.
    pub fn find_all(console: &str) -> Vec<Self> {
        console.lines().filter_map(Self::parse).collect()
    }
}

/// Positions of `names` as whole words in `text`, in the order given;
/// `Err` names the first one missing.
pub fn positions_of(text: &str, names: &[&str]) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|name| {
            text.lines()
                .scan(0usize, |offset, line| {
                    let start = *offset;
                    *offset += line.len() + 1;
                    Some((start, line))
                })
                .find(|(_, line)| line.split_whitespace().any(|w| w == *name))
                .map(|(start, _)| start)
                .ok_or_else(|| format!("phase `{name}` missing"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_form() {
        let l = ReadyLine::parse("vmrun-agent: ready cpus=2 memory_kib=120000 kernel=6.1.192\r")
            .unwrap();
        assert_eq!(l.cpus, 2);
        assert_eq!(l.memory_kib, 120000);
        assert_eq!(l.kernel, "6.1.192");
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "vmrun-agent: ready cpus=2 memory_kib=1",
            "vmrun-agent: ready cpus=x memory_kib=1 kernel=k",
            "vmrun-agent: ready cpus=1 memory_kib=1 kernel=",
            "vmrun-agent: ready cpus=1 memory_kib=1 kernel=k extra=1",
            "something vmrun-agent: ready cpus=1 memory_kib=1 kernel=k",
        ] {
            assert_eq!(ReadyLine::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_ready_lines_among_kernel_output() {
        let console =
            "[    0.1] Linux version\nvmrun-agent: ready cpus=1 memory_kib=9 kernel=k\nreboot\n";
        assert_eq!(ReadyLine::find_all(console).len(), 1);
    }

    #[test]
    fn phase_positions_follow_line_order() {
        let table = "phase ms\nprocess_start 0\nvm_created 1\nexit 9\n";
        let p = positions_of(table, &["process_start", "vm_created", "exit"]).unwrap();
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert!(positions_of(table, &["agent_ready"]).is_err());
        // whole words only
        assert!(positions_of("exit_code 1\n", &["exit"]).is_err());
    }
}
