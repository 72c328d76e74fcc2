//! Sixteen bytes classified at once: bit i of a mask says that byte i is of the class asked for.
//!
//! On x86_64 these are SSE2 compares (SSE2 is part of the x86_64 baseline, so no runtime
//! detection is needed); elsewhere a plain loop computes the same bits. The splitter (JSON
//! structure, line ends), the tokenizer's strings, the detectors' candidates (digits, id
//! prefixes and bodies, IPv6 colons, the start bytes of a short value) and propagation's words
//! use them to skip ordinary bytes sixteen (or sixty-four) at a time, and to avoid a `memchr`
//! call per hit where hits are frequent or near.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8,
};

/// Sixteen bytes, ready to be classified.
#[derive(Clone, Copy)]
pub(crate) struct Chunk(
    #[cfg(target_arch = "x86_64")] __m128i,
    #[cfg(not(target_arch = "x86_64"))] [u8; 16],
);

#[cfg(target_arch = "x86_64")]
impl Chunk {
    /// The first sixteen bytes of `bytes` (which must hold at least sixteen).
    #[inline]
    pub(crate) fn load(bytes: &[u8]) -> Chunk {
        assert!(bytes.len() >= 16, "a chunk is sixteen bytes");
        // SAFETY: SSE2 is always present on x86_64; the unaligned load reads the sixteen bytes
        // checked just above.
        Chunk(unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) })
    }

    /// Bytes equal to `b`.
    #[inline]
    pub(crate) fn eq(self, b: u8) -> u32 {
        // SAFETY: SSE2 is always present on x86_64.
        unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(b as i8))) as u32 }
    }

    /// Bytes in `lo..=hi` (unsigned; a range narrower than all 256 values).
    #[inline]
    pub(crate) fn in_range(self, lo: u8, hi: u8) -> u32 {
        debug_assert!(lo <= hi && hi - lo < 255, "a narrower range");
        // `x - lo <= hi - lo` unsigned, done as a signed compare after moving the range to -128.
        let shift = 128u8.wrapping_sub(lo) as i8;
        let limit = (hi - lo).wrapping_add(1).wrapping_add(128) as i8;
        // SAFETY: SSE2 is always present on x86_64.
        unsafe {
            let moved = _mm_add_epi8(self.0, _mm_set1_epi8(shift));
            _mm_movemask_epi8(_mm_cmplt_epi8(moved, _mm_set1_epi8(limit))) as u32
        }
    }

    /// Every byte with bit 0x20 set: ASCII letters in lower case (`{` and `[` alike, too).
    #[inline]
    pub(crate) fn fold_case(self) -> Chunk {
        // SAFETY: SSE2 is always present on x86_64.
        Chunk(unsafe { _mm_or_si128(self.0, _mm_set1_epi8(0x20)) })
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Chunk {
    /// The first sixteen bytes of `bytes` (which must hold at least sixteen).
    #[inline]
    pub(crate) fn load(bytes: &[u8]) -> Chunk {
        Chunk(bytes[..16].try_into().expect("a chunk is sixteen bytes"))
    }

    fn mask(self, class: impl Fn(u8) -> bool) -> u32 {
        self.0
            .iter()
            .enumerate()
            .fold(0, |m, (i, &b)| m | (u32::from(class(b)) << i))
    }

    /// Bytes equal to `b`.
    #[inline]
    pub(crate) fn eq(self, b: u8) -> u32 {
        self.mask(|x| x == b)
    }

    /// Bytes in `lo..=hi` (unsigned).
    #[inline]
    pub(crate) fn in_range(self, lo: u8, hi: u8) -> u32 {
        self.mask(|x| (lo..=hi).contains(&x))
    }

    /// Every byte with bit 0x20 set: ASCII letters in lower case (`{` and `[` alike, too).
    #[inline]
    pub(crate) fn fold_case(self) -> Chunk {
        Chunk(self.0.map(|b| b | 0x20))
    }
}

/// The position of the first `byte` in `hay`. Near ones (the end of a short line) are found a
/// chunk at a time, which is cheaper there than a `memchr` call; far ones by `memchr`.
#[inline]
pub(crate) fn position(hay: &[u8], byte: u8) -> Option<usize> {
    let mut i = 0;
    while i + 16 <= hay.len() && i < 64 {
        let hits = Chunk::load(&hay[i..]).eq(byte);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize);
        }
        i += 16;
    }
    memchr::memchr(byte, &hay[i..]).map(|k| i + k)
}

/// Whether `bytes[s..e]` holds `a` or `b`. Short ranges (most JSON string values) are one chunk
/// compare instead of a `memchr2` call.
#[inline]
pub(crate) fn contains2(bytes: &[u8], s: usize, e: usize, a: u8, b: u8) -> bool {
    if e - s <= 16 && s + 16 <= bytes.len() {
        let c = Chunk::load(&bytes[s..]);
        (c.eq(a) | c.eq(b)) & ((1u32 << (e - s)) - 1) != 0
    } else {
        memchr::memchr2(a, b, &bytes[s..e]).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_a_byte_loop_for_every_byte_value() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(16) {
            let c = Chunk::load(chunk);
            let want = |f: &dyn Fn(u8) -> bool| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (i, &b)| m | (u32::from(f(b)) << i))
            };
            assert_eq!(c.eq(b'"'), want(&|b| b == b'"'));
            assert_eq!(c.eq(0xff), want(&|b| b == 0xff));
            for (lo, hi) in [
                (b'0', b'9'),
                (b'a', b'z'),
                (0, 0x7f),
                (0x80, 0xff),
                (1, 0xff),
                (200, 200),
            ] {
                assert_eq!(c.in_range(lo, hi), want(&|b| (lo..=hi).contains(&b)), "{lo}..={hi}");
            }
            assert_eq!(c.fold_case().in_range(b'a', b'z'), want(&|b| b.is_ascii_alphabetic()));
            assert_eq!(c.fold_case().eq(b'{'), want(&|b| b == b'{' || b == b'['));
        }
    }

    #[test]
    fn position_finds_the_first_byte_near_or_far() {
        for len in 0..200 {
            for at in (0..len).step_by(7) {
                let mut hay = vec![b'a'; len];
                hay[at] = b'\n';
                if at + 3 < len {
                    hay[at + 3] = b'\n';
                }
                assert_eq!(position(&hay, b'\n'), Some(at), "{len} {at}");
            }
            assert_eq!(position(&vec![b'a'; len], b'\n'), None);
        }
    }

    #[test]
    fn contains2_looks_only_inside_the_range() {
        let text = b"k=v, a:b and then a long tail without either byte in it at all";
        for s in 0..text.len() {
            for e in s..=text.len() {
                let want = text[s..e].iter().any(|&b| b == b'=' || b == b':');
                assert_eq!(contains2(text, s, e, b'=', b':'), want, "{s}..{e}");
            }
        }
    }
}
