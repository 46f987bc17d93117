//! Layer blob compression, recognised by the stream's magic bytes: gzip,
//! zstd or none (a plain tar).

use std::io::{self, BufRead, Read};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Recognise a stream by its first bytes (four are enough).
    pub fn detect(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Reads the uncompressed content of a layer blob.
pub enum Decompressor<R: BufRead> {
    /// Not compressed.
    Plain(R),
    /// gzip.
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    /// zstd.
    Zstd(zstd::Decoder<'static, R>),
}

impl<R: BufRead> Decompressor<R> {
    /// Look at the first bytes of `compressed` and decode it accordingly.
    pub fn new(mut compressed: R) -> io::Result<Self> {
        Ok(match Compression::detect(compressed.fill_buf()?) {
            Compression::Gzip => {
                Decompressor::Gzip(flate2::bufread::MultiGzDecoder::new(compressed))
            }
            Compression::Zstd => Decompressor::Zstd(zstd::Decoder::with_buffer(compressed)?),
            Compression::None => Decompressor::Plain(compressed),
        })
    }

    /// The compressed stream, positioned after what the decoder consumed.
    pub fn into_inner(self) -> R {
        match self {
            Decompressor::Plain(r) => r,
            Decompressor::Gzip(r) => r.into_inner(),
            Decompressor::Zstd(r) => r.finish(),
        }
    }
}

impl<R: BufRead> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decompressor::Plain(r) => r.read(buf),
            Decompressor::Gzip(r) => r.read(buf),
            Decompressor::Zstd(r) => r.read(buf),
        }
    }
}
