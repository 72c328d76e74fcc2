//! File identity: device + inode + a fingerprint of the first bytes.
//!
//! Device and inode alone are not enough: once a file is deleted and scrubd has closed it, the
//! filesystem may give its inode to the next new file. The fingerprint (a hash of the first
//! `len` bytes) tells the two apart, and finds a file again after it was copied or compressed.
//!
//! The fingerprint rule: a file is identified once it holds [`DEFAULT_FINGERPRINT_BYTES`] bytes
//! (configurable in [`crate::source::TailerOptions`]); a shorter file is identified from the bytes
//! it has once it has not grown for the idle timeout (or once it is rotated away). The length
//! used is part of the identity, so the same prefix can be hashed again later, whatever the file
//! has grown to. An empty file has no identity and is never read.
//!
//! Must not: hash more than the prefix, or keep the bytes it hashed.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Number of leading bytes hashed into a fingerprint, unless configured otherwise.
pub const DEFAULT_FINGERPRINT_BYTES: usize = 1024;

/// A hash of a file's first `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of bytes hashed (at most the configured fingerprint size; fewer for a short file).
    pub len: u32,
    /// First 8 bytes of the SHA-256 of those bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `prefix` (all of it).
    pub fn of(prefix: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(prefix);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Fingerprint {
            len: u32::try_from(prefix.len()).unwrap_or(u32::MAX),
            hash: u64::from_be_bytes(first),
        }
    }

    /// Whether `reader`'s first `self.len` bytes hash to this fingerprint. A reader with fewer
    /// bytes does not match.
    pub fn matches(&self, reader: impl Read) -> std::io::Result<bool> {
        let mut prefix = Vec::with_capacity(self.len as usize);
        reader.take(u64::from(self.len)).read_to_end(&mut prefix)?;
        Ok(prefix.len() == self.len as usize && Fingerprint::of(&prefix) == *self)
    }
}

/// The identity of one tailed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: Fingerprint,
}

impl fmt::Display for FileId {
    /// The stable string form, used in object keys: `{dev}-{ino}-{len}-{hash}` in lowercase hex
    /// (only `[0-9a-f-]`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x}-{:x}-{:x}-{:016x}",
            self.dev, self.ino, self.fingerprint.len, self.fingerprint.hash
        )
    }
}

/// Error parsing the string form of a [`FileId`].
#[derive(Debug, thiserror::Error)]
#[error("invalid file id {0:?}: expected dev-ino-len-hash in hex")]
pub struct ParseFileIdError(String);

impl FromStr for FileId {
    type Err = ParseFileIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFileIdError(s.chars().take(80).collect());
        let parts: Vec<&str> = s.split('-').collect();
        let [dev, ino, len, hash] = parts.as_slice() else {
            return Err(err());
        };
        let hex = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(err());
            }
            u64::from_str_radix(p, 16).map_err(|_| err())
        };
        Ok(FileId {
            dev: hex(dev)?,
            ino: hex(ino)?,
            fingerprint: Fingerprint {
                len: u32::try_from(hex(len)?).map_err(|_| err())?,
                hash: hex(hash)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<&str>) {
        match (input.parse::<FileId>(), expect) {
            (Ok(id), Some(want)) => assert_eq!(id.to_string(), want),
            (Err(_), None) => {}
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn string_form_round_trips() {
        check("801-1a2b-400-00000000deadbeef", Some("801-1a2b-400-00000000deadbeef"));
        check("0-0-1-0000000000000000", Some("0-0-1-0000000000000000"));
        check("801-1a2b-400", None);
        check("801-1a2b-400-dead-beef", None);
        check("801-1A2B-400-deadbeef", None);
        check("801--400-deadbeef", None);
        check("801-+1-400-deadbeef", None);
        check("801-1-100000000-deadbeef", None);
        let id = FileId {
            dev: u64::MAX,
            ino: 7,
            fingerprint: Fingerprint::of(b"hello"),
        };
        assert_eq!(id.to_string().parse::<FileId>().unwrap(), id);
        assert!(id.to_string().bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }

    #[test]
    fn fingerprint_matches_its_prefix_only() {
        let fp = Fingerprint::of(b"abcdef");
        assert!(fp.matches(&b"abcdefghij"[..]).unwrap());
        assert!(!fp.matches(&b"abcde"[..]).unwrap());
        assert!(!fp.matches(&b"abcdeX"[..]).unwrap());
        assert_ne!(Fingerprint::of(b"a"), Fingerprint::of(b"b"));
    }
}
