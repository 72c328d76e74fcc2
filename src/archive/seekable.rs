//! The archive object format: independent zstd frames, then the seek table of the zstd seekable
//! format (zstd's `contrib/seekable_format`) as a trailing skippable frame.
//!
//! Plain `zstd -d` decompresses the whole object (it skips the skippable frame); a reader that
//! knows a frame's compressed range fetches it with one ranged GET and decompresses it alone.
//!
//! The format is written here rather than through zstd's contrib `ZSTD_seekable_*` API because
//! the writer needs frame boundaries exactly at record boundaries and per-frame offsets for the
//! manifest, and the reader must parse the seek table from a fetched object tail rather than from
//! a whole object or a seekable file handle; the format is 17 bytes plus 8 per frame. Tests check
//! our output against the contrib reader (`zstd_safe::seekable`).
//!
//! Must not: trust sizes read from an object without bounds (a corrupt table is an error, never a
//! huge allocation or a panic).

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ArchiveError, FrameEntry, Manifest, RecordEntry};
use crate::store::ObjectStore;

/// Magic of the skippable frame holding the seek table (`ZSTD_MAGIC_SKIPPABLE_START | 0xE`).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic at the very end of a seekable object.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// `Number_Of_Frames` (4) + `Seek_Table_Descriptor` (1) + `Seekable_Magic_Number` (4).
pub const FOOTER_LEN: usize = 9;
/// Skippable frame header: magic (4) + frame size (4).
const SKIPPABLE_HEADER_LEN: usize = 8;
/// Largest decompressed frame a reader accepts (frames are bounded by `frame_bytes` ≤ 1 GiB).
const MAX_FRAME_DECOMPRESSED: u64 = 1 << 30;

/// Compresses frames one at a time into an in-memory object and finishes it with the seek table.
pub struct FrameEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
    frames: Vec<FrameEntry>,
    decompressed: u64,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("frames", &self.frames.len())
            .field("compressed", &self.out.len())
            .finish()
    }
}

impl FrameEncoder {
    pub fn new(level: i32) -> Result<FrameEncoder, ArchiveError> {
        let zerr = |source| ArchiveError::Zstd {
            context: "creating the compressor".into(),
            source,
        };
        let mut compressor = zstd::bulk::Compressor::new(level).map_err(zerr)?;
        // A content checksum per frame lets `zstd -d` and our reader detect corruption.
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(zerr)?;
        Ok(FrameEncoder {
            compressor,
            out: Vec::new(),
            frames: Vec::new(),
            decompressed: 0,
        })
    }

    /// Compresses `content` as one independent frame and returns its entry.
    pub fn write_frame(&mut self, content: &[u8]) -> Result<FrameEntry, ArchiveError> {
        if content.len() as u64 > u32::MAX as u64 {
            return Err(ArchiveError::Config(format!(
                "a frame of {} bytes does not fit the seek table",
                content.len()
            )));
        }
        // Straight onto the end of `out` (a cursor there is zstd's appending buffer): no frame
        // allocated and copied over.
        let offset = self.out.len();
        self.out.reserve(zstd::zstd_safe::compress_bound(content.len()));
        let mut end = std::io::Cursor::new(&mut self.out);
        end.set_position(offset as u64);
        let compressed_len = self
            .compressor
            .compress_to_buffer(content, &mut end)
            .map_err(|source| ArchiveError::Zstd {
                context: "compressing a frame".into(),
                source,
            })?;
        let entry = FrameEntry {
            compressed_offset: offset as u64,
            compressed_len: compressed_len as u64,
            decompressed_offset: self.decompressed,
            decompressed_len: content.len() as u64,
        };
        self.decompressed += content.len() as u64;
        self.frames.push(entry);
        Ok(entry)
    }

    /// Compressed bytes so far (without the seek table).
    pub fn compressed_len(&self) -> u64 {
        self.out.len() as u64
    }

    pub fn decompressed_len(&self) -> u64 {
        self.decompressed
    }

    /// Frames written so far: the index the next frame gets.
    pub fn frame_count(&self) -> u32 {
        // Each frame holds at least one record of a file, far fewer than u32::MAX per archive.
        self.frames.len() as u32
    }

    /// Appends the seek table and returns the object and its frames.
    pub fn finish(mut self) -> (Vec<u8>, Vec<FrameEntry>) {
        self.out.extend_from_slice(&encode_seek_table(&self.frames));
        (self.out, self.frames)
    }
}

/// The seek table as a skippable frame, without per-frame checksums (each frame carries its own
/// zstd content checksum).
pub fn encode_seek_table(frames: &[FrameEntry]) -> Vec<u8> {
    let body_len = frames.len() * 8 + FOOTER_LEN;
    let mut out = Vec::with_capacity(SKIPPABLE_HEADER_LEN + body_len);
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    for f in frames {
        // Sizes are bounded by `write_frame` (decompressed) and by zstd's bound on that (compressed).
        out.extend_from_slice(&(f.compressed_len as u32).to_le_bytes());
        out.extend_from_slice(&(f.decompressed_len as u32).to_le_bytes());
    }
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.push(0); // descriptor: no checksums, reserved bits zero
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    out
}

/// Length of the whole seek-table frame, read from the last [`FOOTER_LEN`] bytes of an object.
pub fn seek_table_len(footer: &[u8]) -> Result<u64, String> {
    if footer.len() < FOOTER_LEN {
        return Err("object shorter than a seek table footer".into());
    }
    let footer = &footer[footer.len() - FOOTER_LEN..];
    if u32_at(footer, 5) != SEEKABLE_MAGIC {
        return Err("no seekable magic at the end of the object".into());
    }
    let descriptor = footer[4];
    if descriptor & 0x7c != 0 {
        return Err(format!("reserved bits set in seek table descriptor {descriptor:#04x}"));
    }
    let entry = if descriptor & 0x80 != 0 { 12 } else { 8 };
    Ok(SKIPPABLE_HEADER_LEN as u64 + u32_at(footer, 0) as u64 * entry + FOOTER_LEN as u64)
}

/// Parses the seek table from `tail`, the last bytes of an object of `object_len` bytes (the whole
/// object works too). Checks that the frames tile the object exactly up to the table.
pub fn parse_seek_table(tail: &[u8], object_len: u64) -> Result<Vec<FrameEntry>, String> {
    let table_len = seek_table_len(tail)?;
    if table_len > tail.len() as u64 || table_len > object_len {
        return Err(format!(
            "seek table of {table_len} bytes does not fit the fetched tail or object"
        ));
    }
    let table = &tail[tail.len() - table_len as usize..];
    if u32_at(table, 0) != SKIPPABLE_MAGIC {
        return Err("seek table is not in a seekable skippable frame".into());
    }
    if u32_at(table, 4) as u64 != table_len - SKIPPABLE_HEADER_LEN as u64 {
        return Err("skippable frame size disagrees with the number of frames".into());
    }
    let checksums = table[table.len() - FOOTER_LEN + 4] & 0x80 != 0;
    let entry = if checksums { 12 } else { 8 };
    let entries = &table[SKIPPABLE_HEADER_LEN..table.len() - FOOTER_LEN];
    let mut frames = Vec::with_capacity(entries.len() / entry);
    let (mut c_off, mut d_off) = (0u64, 0u64);
    for e in entries.chunks_exact(entry) {
        let (c, d) = (u32_at(e, 0) as u64, u32_at(e, 4) as u64);
        frames.push(FrameEntry {
            compressed_offset: c_off,
            compressed_len: c,
            decompressed_offset: d_off,
            decompressed_len: d,
        });
        c_off += c;
        d_off += d;
    }
    if c_off + table_len != object_len {
        return Err(format!(
            "frames cover {c_off} bytes but the object has {} before its seek table",
            object_len - table_len
        ));
    }
    Ok(frames)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decompresses one frame (the bytes of its compressed range), checking its size.
pub fn decompress_frame(compressed: &[u8], frame: &FrameEntry, key: &str) -> Result<Vec<u8>, ArchiveError> {
    let mut d = FrameDecoder::new();
    d.decompress(compressed, frame, key)?;
    Ok(d.out)
}

/// Decompresses the frames of an archive one after another, reusing one zstd context and one
/// output buffer: a fresh context and buffer per frame cost page faults, not just allocations.
#[derive(Default)]
pub struct FrameDecoder {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    out: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Like [`decompress_frame`]; the content stays valid until the next call.
    pub fn decompress(&mut self, compressed: &[u8], frame: &FrameEntry, key: &str) -> Result<&[u8], ArchiveError> {
        let corrupt = |message: String| ArchiveError::Corrupt {
            key: key.to_string(),
            message,
        };
        if frame.decompressed_len > MAX_FRAME_DECOMPRESSED || compressed.len() as u64 != frame.compressed_len {
            return Err(corrupt(format!("implausible frame {frame:?}")));
        }
        let fail =
            |e: std::io::Error| corrupt(format!("frame at {} does not decompress: {e}", frame.compressed_offset));
        let dctx = match &mut self.dctx {
            Some(d) => d,
            none => none.insert(zstd::bulk::Decompressor::new().map_err(fail)?),
        };
        self.out.clear();
        self.out.reserve(frame.decompressed_len as usize);
        let n = dctx.decompress_to_buffer(compressed, &mut self.out).map_err(fail)?;
        if n as u64 != frame.decompressed_len {
            return Err(corrupt(format!(
                "frame at {} decompresses to {n} bytes, expected {}",
                frame.compressed_offset, frame.decompressed_len
            )));
        }
        Ok(&self.out)
    }
}

/// Reads the seek table of the object `key` with two ranged GETs (footer, then table).
pub async fn read_seek_table(store: &dyn ObjectStore, key: &str) -> Result<Vec<FrameEntry>, ArchiveError> {
    let corrupt = |message: String| ArchiveError::Corrupt {
        key: key.to_string(),
        message,
    };
    let size = match store.head(key).await? {
        Some(meta) => meta.size,
        None => return Err(crate::store::StoreError::NotFound { key: key.to_string() }.into()),
    };
    if size < FOOTER_LEN as u64 {
        return Err(corrupt("object shorter than a seek table footer".into()));
    }
    let footer = store.get(key, Some(size - FOOTER_LEN as u64..size)).await?;
    let table_len = seek_table_len(&footer).map_err(corrupt)?;
    if table_len > size {
        return Err(corrupt(format!(
            "seek table of {table_len} bytes in an object of {size}"
        )));
    }
    let tail = store.get(key, Some(size - table_len..size)).await?;
    parse_seek_table(&tail, size).map_err(corrupt)
}

/// Fetches one frame of the object `key` with a ranged GET and decompresses it.
pub async fn read_frame(store: &dyn ObjectStore, key: &str, frame: &FrameEntry) -> Result<Bytes, ArchiveError> {
    let range = frame.compressed_offset..frame.compressed_offset + frame.compressed_len;
    let compressed = store.get(key, Some(range)).await?;
    decompress_frame(&compressed, frame, key).map(Bytes::from)
}

/// Fetches the frame holding `record` and returns the record's scrubbed bytes.
pub async fn read_record(
    store: &dyn ObjectStore,
    manifest: &Manifest,
    record: &RecordEntry,
) -> Result<Bytes, ArchiveError> {
    let frame = record_frame(manifest, record)?;
    let content = read_frame(store, &manifest.key, frame).await?;
    let start = (record.start - frame.decompressed_offset) as usize;
    Ok(content.slice(start..start + record.len as usize))
}

/// The frame of `record`, checked to contain the record's whole byte range.
pub fn record_frame<'m>(manifest: &'m Manifest, record: &RecordEntry) -> Result<&'m FrameEntry, ArchiveError> {
    let frame = manifest.frames.get(record.frame as usize);
    match frame {
        Some(f)
            if record.start >= f.decompressed_offset
                && record
                    .start
                    .checked_add(record.len)
                    .is_some_and(|end| end <= f.decompressed_offset + f.decompressed_len) =>
        {
            Ok(f)
        }
        _ => Err(ArchiveError::Corrupt {
            key: manifest.key.clone(),
            message: format!("record at {} is not inside frame {}", record.start, record.frame),
        }),
    }
}

/// Fetches the whole archive of `manifest` and verifies it (see [`verify_archive`]).
pub async fn read_archive(store: &dyn ObjectStore, manifest: &Manifest) -> Result<Bytes, ArchiveError> {
    let object = store.get(&manifest.key, None).await?;
    verify_archive(&object, manifest)?;
    Ok(object)
}

/// Verifies a whole archive object against its manifest: sha256, size, seek table, and that
/// every frame decompresses to its recorded size.
pub fn verify_archive(object: &[u8], manifest: &Manifest) -> Result<(), ArchiveError> {
    let corrupt = |message: String| ArchiveError::Corrupt {
        key: manifest.key.clone(),
        message,
    };
    if object.len() as u64 != manifest.compressed_bytes {
        return Err(corrupt(format!(
            "object has {} bytes, manifest says {}",
            object.len(),
            manifest.compressed_bytes
        )));
    }
    let sha = hex::encode(Sha256::digest(object));
    if !sha.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(corrupt("sha256 differs from the manifest".into()));
    }
    let frames = parse_seek_table(object, object.len() as u64).map_err(corrupt)?;
    if frames != manifest.frames {
        return Err(corrupt("seek table differs from the manifest's frames".into()));
    }
    let mut total = 0;
    for f in &frames {
        let range = f.compressed_offset as usize..(f.compressed_offset + f.compressed_len) as usize;
        total += decompress_frame(&object[range], f, &manifest.key)?.len() as u64;
    }
    if total != manifest.decompressed_bytes {
        return Err(corrupt(format!(
            "content has {total} bytes, manifest says {}",
            manifest.decompressed_bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an object of the given frames and checks it against zstd's contrib seekable reader.
    fn check(frames: &[&[u8]]) {
        let mut enc = FrameEncoder::new(3).unwrap();
        for f in frames {
            enc.write_frame(f).unwrap();
        }
        let (object, entries) = enc.finish();
        assert_eq!(parse_seek_table(&object, object.len() as u64).unwrap(), entries);
        // Only the tail is needed.
        let tail_len = seek_table_len(&object).unwrap() as usize;
        assert_eq!(
            parse_seek_table(&object[object.len() - tail_len..], object.len() as u64).unwrap(),
            entries
        );

        let mut reference = zstd::zstd_safe::seekable::Seekable::create();
        reference.init_buff(&object).unwrap();
        assert_eq!(reference.num_frames() as usize, frames.len());
        for (i, (e, content)) in entries.iter().zip(frames).enumerate() {
            let i = i as u32;
            assert_eq!(reference.frame_compressed_offset(i).unwrap(), e.compressed_offset);
            assert_eq!(reference.frame_decompressed_offset(i).unwrap(), e.decompressed_offset);
            assert_eq!(reference.frame_compressed_size(i).unwrap() as u64, e.compressed_len);
            let range = e.compressed_offset as usize..(e.compressed_offset + e.compressed_len) as usize;
            assert_eq!(decompress_frame(&object[range], e, "k").unwrap(), *content);
        }
        // zstd's streaming decoder reads the object as one stream and skips the table.
        let all: Vec<u8> = frames.concat();
        assert_eq!(zstd::stream::decode_all(&object[..]).unwrap(), all);
    }

    #[test]
    fn seek_table_matches_contrib_reader() {
        check(&[]);
        check(&[b"one record\n"]);
        check(&[
            b"a\n",
            b"",
            b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n",
            &[7u8; 100_000],
        ]);
    }

    #[test]
    fn corrupt_tables_are_errors_not_panics() {
        let mut enc = FrameEncoder::new(3).unwrap();
        enc.write_frame(b"hello\n").unwrap();
        let (object, _) = enc.finish();
        let n = object.len();
        for i in 0..n {
            let mut bad = object.clone();
            bad[i] ^= 0xff;
            // Must not panic; flipping a table byte must not yield a table that misdescribes the object.
            let table_start = n - seek_table_len(&object).unwrap() as usize;
            // Only the frame itself and the entry's decompressed size (checked when the frame is
            // decompressed) are not covered by the table's own consistency checks.
            let uncheckable = i < table_start || (table_start + 12..table_start + 16).contains(&i);
            if let Ok(frames) = parse_seek_table(&bad, n as u64) {
                assert!(uncheckable, "flipped byte {i} accepted");
                assert_eq!(frames.len(), 1);
            }
        }
        for cut in 0..n {
            let _ = parse_seek_table(&object[cut..], n as u64);
            let _ = parse_seek_table(&object[..cut], cut as u64);
        }
    }
}
