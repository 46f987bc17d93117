//! The guest kernel command line.

use linux_loader::cmdline::Cmdline;

use crate::arch::x86_64::layout::CMDLINE_MAX_SIZE;

/// The words of [`DEFAULT_CMDLINE`] that keep the guest from writing the
/// mapped kernel's and initramfs's pages for nothing, as a literal for
/// `concat!`: `vmrun bench` boots every runtime's guest with them too.
macro_rules! page_sharing_words {
    () => {
        "noreplace-smp retain_initrd"
    };
}
pub(crate) use page_sharing_words;

/// The command line `vmrun boot` uses when none is given (team contract 3),
/// and every container's VM. Besides the contract's words:
/// - `nomodule quiet`: no module loading; a console that prints only
///   warnings (each byte is a VM exit);
/// - `noreplace-smp`: a kernel that finds one CPU rewrites every `lock`
///   prefix in its text (~7,000 sites spread over nearly every text page).
///   The VMM maps the kernel's pages from its file copy-on-write
///   (`machine::file_mapping`), so each page written that way became the
///   VM's own copy; without the rewrite the text stays the page cache's,
///   shared by every VM that boots the same kernel.
/// - `retain_initrd`: the kernel keeps the initramfs's pages once unpacked
///   instead of poisoning and freeing them, which wrote (and so copied)
///   every page of the mapped initramfs file. They stay shared too.
pub const DEFAULT_CMDLINE: &str = concat!(
    "console=ttyS0 reboot=k panic=-1 pci=off nomodule quiet ",
    page_sharing_words!()
);

/// Errors building the command line.
#[derive(Debug, thiserror::Error)]
pub enum CmdlineError {
    /// The text is not a valid command line (too long, control characters...).
    #[error("invalid kernel command line (at most {} bytes of printable ASCII)", CMDLINE_MAX_SIZE - 1)]
    Invalid(#[source] linux_loader::cmdline::Error),
}

/// Builds the command line: `base`, then each of `words` (e.g. the
/// `virtio_mmio.device=` words of the attached devices).
pub fn build_cmdline(base: &str, words: &[String]) -> Result<Cmdline, CmdlineError> {
    let mut cmdline = Cmdline::new(CMDLINE_MAX_SIZE).map_err(CmdlineError::Invalid)?;
    for part in std::iter::once(base.trim()).chain(words.iter().map(|w| w.trim())) {
        if !part.is_empty() {
            cmdline.insert_str(part).map_err(CmdlineError::Invalid)?;
        }
    }
    Ok(cmdline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(c: &Cmdline) -> String {
        c.as_cstring().unwrap().into_string().unwrap()
    }

    #[test]
    fn default_then_device_words() {
        let words = [
            "virtio_mmio.device=0x1000@0xd0000000:5".to_string(),
            "virtio_mmio.device=0x1000@0xd0001000:6".to_string(),
        ];
        let c = build_cmdline(DEFAULT_CMDLINE, &words).unwrap();
        assert_eq!(
            text(&c),
            format!(
                "{DEFAULT_CMDLINE} virtio_mmio.device=0x1000@0xd0000000:5 virtio_mmio.device=0x1000@0xd0001000:6"
            )
        );
    }

    #[test]
    fn contract_words_are_in_the_default() {
        for word in [
            "console=ttyS0",
            "reboot=k",
            "panic=-1",
            "pci=off",
            "noreplace-smp",
            "retain_initrd",
        ] {
            assert!(DEFAULT_CMDLINE.split(' ').any(|w| w == word), "{word}");
        }
    }

    #[test]
    fn too_long_or_invalid_is_rejected() {
        let long = "a".repeat(CMDLINE_MAX_SIZE);
        assert!(build_cmdline(&long, &[]).is_err());
        assert!(build_cmdline("console=ttyS0\u{7}", &[]).is_err());
        assert_eq!(text(&build_cmdline("  ", &[]).unwrap()), "");
    }
}
