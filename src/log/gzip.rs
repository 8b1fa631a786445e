//! The compression helper: `upkeep __gzip PATH` gzips PATH into PATH.gz
//! and removes PATH. It runs as a child process so that the daemon's loop
//! never spends time compressing.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// Compresses `path` to `path.gz` (through a temporary name, so a
/// half-written `.gz` never appears), then removes `path`.
pub fn compress_file(path: &Path) -> io::Result<()> {
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let mut tmp = gz.clone();
    tmp.push(".tmp");
    let mut input = File::open(path)?;
    let mode = input.metadata()?.permissions();
    let out = File::create(&tmp)?;
    out.set_permissions(mode)?;
    let mut enc = GzEncoder::new(BufWriter::new(out), Compression::default());
    io::copy(&mut input, &mut enc)?;
    let mut w = enc.finish()?;
    w.flush()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&tmp, &gz)?;
    fs::remove_file(path)?;
    Ok(())
}
