//! Reading the fuzzer's bytes: small numbers for operation sequences, and
//! sections split at a separator for multi-document inputs.

/// Hands out the input's bytes as little-endian numbers; reads past the end
/// give zeros, so every input is a valid operation sequence.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    data: &'a [u8],
}

impl<'a> ByteReader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for (d, s) in out.iter_mut().zip(self.bytes(N)) {
            *d = *s;
        }
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// The next two bytes.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// The next four bytes.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// The next eight bytes.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// One of `choices`, picked by the next byte; the byte's top value
    /// (0xff) asks for `other()` instead, so raw values stay reachable.
    pub fn pick<T: Copy>(&mut self, choices: &[T], other: impl FnOnce(&mut Self) -> T) -> T {
        let b = self.u8();
        match choices.get(usize::from(b) % (choices.len() + 1)) {
            Some(v) if b != 0xff => *v,
            _ => other(self),
        }
    }
}

/// Splits `data` at every occurrence of `sep` (at most `max` pieces; the
/// last one keeps the rest).
pub fn sections<'a>(data: &'a [u8], sep: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < max {
        let Some(at) = find(rest, sep) else {
            break;
        };
        out.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    out.push(rest);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_pads_with_zeros() {
        let mut r = ByteReader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), 0x0201);
        assert_eq!(r.u32(), 3);
        assert!(r.is_empty());
        assert_eq!(r.u8(), 0);
    }

    #[test]
    fn sections_split_and_cap() {
        assert_eq!(sections(b"a--b--c", b"--", 8), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(sections(b"a--b--c", b"--", 2), vec![&b"a"[..], b"b--c"]);
        assert_eq!(sections(b"abc", b"--", 8), vec![&b"abc"[..]]);
    }
}
