//! Bytes classified a vector at a time: bit i of a mask says that byte i is of the class asked for.
//!
//! [`Chunk`] is sixteen bytes: SSE2 compares on x86_64 (part of the x86_64 baseline, so no
//! runtime detection is needed), a plain loop elsewhere. The splitter (JSON structure, line
//! ends), the tokenizer's strings, the detectors' candidates (digits, id prefixes and bodies,
//! IPv6 colons) and propagation's words use it to skip ordinary bytes sixteen (or sixty-four) at a
//! time, and to avoid a `memchr` call per hit where hits are frequent or near.
//!
//! The loops that run over whole records (the splitter's blocks, the digit, id and colon
//! candidates) are written once over [`Lanes`] and compiled twice: for [`Chunk`], and for
//! [`Wide`] (thirty-two bytes, AVX2) inside a `#[target_feature(enable = "avx2")]` function that
//! is called only when [`has_avx2`] says the CPU has it. The binary stays portable; property tests
//! check both paths against a byte loop.

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

/// Bytes classified a vector at a time, for loops written once for both widths: [`Chunk`]
/// (sixteen lanes, everywhere) and [`Wide`] (thirty-two, x86_64 CPUs with AVX2). Masks are `u32`,
/// bit i for lane i.
pub(crate) trait Lanes: Copy {
    const WIDTH: usize;

    /// The first `WIDTH` bytes of `bytes` (which must hold at least that many).
    ///
    /// # Safety
    /// The CPU has the instructions of `Self`: always for [`Chunk`]; for [`Wide`], only inside a
    /// function that checked [`has_avx2`] (or is compiled for AVX2 and only called after that).
    unsafe fn load(bytes: &[u8]) -> Self;
    fn eq(self, b: u8) -> u32;
    fn in_range(self, lo: u8, hi: u8) -> u32;
    fn fold_case(self) -> Self;
}

impl Lanes for Chunk {
    const WIDTH: usize = 16;

    #[inline(always)]
    unsafe fn load(bytes: &[u8]) -> Chunk {
        Chunk::load(bytes)
    }
    #[inline(always)]
    fn eq(self, b: u8) -> u32 {
        Chunk::eq(self, b)
    }
    #[inline(always)]
    fn in_range(self, lo: u8, hi: u8) -> u32 {
        Chunk::in_range(self, lo, hi)
    }
    #[inline(always)]
    fn fold_case(self) -> Chunk {
        Chunk::fold_case(self)
    }
}

/// Whether this CPU has AVX2 (checked once by std, then a load): the loops that pay for it run
/// thirty-two bytes at a time as [`Wide`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// Thirty-two bytes in an AVX2 register. Its methods compile to single AVX2 instructions only
/// when inlined into a function compiled for AVX2 (`#[target_feature(enable = "avx2")]`), which
/// is how every user calls them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Wide(std::arch::x86_64::__m256i);

#[cfg(target_arch = "x86_64")]
impl Lanes for Wide {
    const WIDTH: usize = 32;

    #[inline(always)]
    unsafe fn load(bytes: &[u8]) -> Wide {
        assert!(bytes.len() >= 32, "a wide chunk is thirty-two bytes");
        // SAFETY: the caller guarantees AVX2; the unaligned load reads the bytes checked above.
        Wide(unsafe { std::arch::x86_64::_mm256_loadu_si256(bytes.as_ptr().cast()) })
    }

    #[inline(always)]
    fn eq(self, b: u8) -> u32 {
        use std::arch::x86_64::{_mm256_cmpeq_epi8, _mm256_movemask_epi8, _mm256_set1_epi8};
        // SAFETY: a `Wide` exists only where AVX2 is present (see `load`).
        unsafe { _mm256_movemask_epi8(_mm256_cmpeq_epi8(self.0, _mm256_set1_epi8(b as i8))) as u32 }
    }

    #[inline(always)]
    fn in_range(self, lo: u8, hi: u8) -> u32 {
        use std::arch::x86_64::{_mm256_add_epi8, _mm256_cmpgt_epi8, _mm256_movemask_epi8, _mm256_set1_epi8};
        debug_assert!(lo <= hi && hi - lo < 255, "a narrower range");
        // As `Chunk::in_range`: moved to -128, then one signed compare.
        let shift = 128u8.wrapping_sub(lo) as i8;
        let limit = (hi - lo).wrapping_add(1).wrapping_add(128) as i8;
        // SAFETY: a `Wide` exists only where AVX2 is present (see `load`).
        unsafe {
            let moved = _mm256_add_epi8(self.0, _mm256_set1_epi8(shift));
            _mm256_movemask_epi8(_mm256_cmpgt_epi8(_mm256_set1_epi8(limit), moved)) as u32
        }
    }

    #[inline(always)]
    fn fold_case(self) -> Wide {
        use std::arch::x86_64::{_mm256_or_si256, _mm256_set1_epi8};
        // SAFETY: a `Wide` exists only where AVX2 is present (see `load`).
        Wide(unsafe { _mm256_or_si256(self.0, _mm256_set1_epi8(0x20)) })
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

    /// Every class of every byte value, in each lane position, against a byte loop.
    #[inline(always)]
    fn check_masks<L: Lanes>() {
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(L::WIDTH) {
            // SAFETY: the callers run this only where `L`'s instructions are there.
            let c = unsafe { L::load(chunk) };
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
    fn masks_match_a_byte_loop_for_every_byte_value() {
        check_masks::<Chunk>();
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn wide_masks_match_a_byte_loop_for_every_byte_value() {
        #[target_feature(enable = "avx2")]
        fn wide() {
            check_masks::<Wide>();
        }
        assert!(has_avx2(), "the wide path is tested where it runs: a CPU with AVX2");
        // SAFETY: checked just above.
        unsafe { wide() };
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
