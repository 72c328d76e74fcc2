//! Checking a Parquet split-block bloom filter while reading only the one 32-byte block a value
//! hashes to, instead of the whole filter.
//!
//! A split-block bloom filter is an array of 32-byte blocks; a value's xxHash64 picks one block
//! (`((hash >> 32) * num_blocks) >> 32`) and eight bits in it. So a membership test needs the
//! filter's offset and length (from the column chunk metadata), the header length (the bitset is
//! a power of two bytes, the thrift header a few bytes in front of it) and one block. Over a
//! bucket this turns kilobytes per row group into a 32-byte ranged GET.
//!
//! Must not: give a false negative. When the layout is not as expected the caller reads the
//! whole filter instead ([`BlockRef::Whole`]).

use std::ops::Range;

use parquet::bloom_filter::Sbbf;

const BLOCK: u64 = 32;

/// Where to find what a membership test needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRef {
    /// Read this byte range (one block) and test it with [`check_block`].
    Block(Range<u64>),
    /// Read this range (the whole filter, header included) and test with [`check_whole`].
    Whole(Range<u64>),
}

/// The block of the filter at `[offset, offset + length)` that `value` hashes to.
pub fn block_for(offset: u64, length: u64, value: &[u8]) -> BlockRef {
    // The bitset is the largest power of two that fits; the header is what is left, which is
    // more than 2 and less than 32 bytes for any filter the spec allows.
    let bitset = if length == 0 {
        0
    } else {
        1u64 << (63 - length.leading_zeros())
    };
    let header = length - bitset;
    if bitset < BLOCK || !(2..BLOCK).contains(&header) {
        return BlockRef::Whole(offset..offset + length);
    }
    let num_blocks = bitset / BLOCK;
    let hash = xxhash64(value, 0);
    let index = ((hash >> 32).saturating_mul(num_blocks)) >> 32;
    let start = offset + header + index * BLOCK;
    BlockRef::Block(start..start + BLOCK)
}

/// Whether `value` may be in the filter, given the 32-byte block [`block_for`] chose.
pub fn check_block(block: &[u8], value: &[u8]) -> bool {
    if block.len() != BLOCK as usize {
        return true;
    }
    // A one-block filter maps every hash to block 0 and then tests the same bits.
    Sbbf::new(block).check(value)
}

/// Whether `value` may be in the filter, given the whole serialized filter.
pub fn check_whole(filter: &[u8], value: &[u8]) -> bool {
    match Sbbf::from_bytes(filter) {
        Ok(f) => f.check(value),
        // An unreadable filter cannot rule anything out.
        Err(_) => true,
    }
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

fn read64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read32(b: &[u8]) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u64::from(u32::from_le_bytes(a))
}

/// xxHash64, the hash Parquet bloom filters use (with seed 0).
pub fn xxhash64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, read64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for acc in v {
            h = merge(h, acc);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read32(rest).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxhash_matches_reference() {
        // Reference values of xxHash64 with seed 0.
        assert_eq!(xxhash64(b"", 0), 17241709254077376921);
        assert_eq!(xxhash64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxhash64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxhash64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    /// The block chosen from the serialized filter gives the same answer as the whole filter,
    /// for values in and out of it, over filters of several sizes.
    #[test]
    fn block_check_agrees_with_whole_filter() {
        for ndv in [1u64, 100, 5000, 100_000] {
            let mut f = Sbbf::new_with_ndv_fpp(ndv, 0.01).unwrap();
            let inserted: Vec<String> = (0..ndv.min(3000)).map(|i| format!("cus_{i:014}")).collect();
            for v in &inserted {
                f.insert(v.as_str());
            }
            let mut bytes = Vec::new();
            f.write(&mut bytes).unwrap();
            let offset = 1000u64;
            let mut file = vec![0u8; offset as usize];
            file.extend_from_slice(&bytes);
            let probes = inserted.iter().cloned().chain((0..3000).map(|i| format!("evt_{i}x")));
            for v in probes {
                let whole = f.check(v.as_str());
                let got = match block_for(offset, bytes.len() as u64, v.as_bytes()) {
                    BlockRef::Block(r) => check_block(&file[r.start as usize..r.end as usize], v.as_bytes()),
                    BlockRef::Whole(r) => check_whole(&file[r.start as usize..r.end as usize], v.as_bytes()),
                };
                assert_eq!(got, whole, "ndv {ndv} value {v}");
            }
        }
    }
}
