//! Reading a log from a descriptor the daemon passed (`upkeep logs`, the
//! gateway): where its last lines start, and, when following, whether the
//! daemon's answer is another file now (rotated, recreated) or the same
//! one truncated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

/// Where the last `n` lines of `f` start (a final newline ends the last
/// line; it does not start one).
pub fn tail_start(f: &mut File, n: usize) -> std::io::Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 {
        return Ok(len);
    }
    let mut start = len;
    let mut newlines = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    while start > 0 {
        let take = chunk.len().min(start as usize);
        start -= take as u64;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk[..take])?;
        for i in (0..take).rev() {
            if chunk[i] == b'\n' && start + i as u64 != len - 1 {
                newlines += 1;
                if newlines == n {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
    }
    Ok(0)
}

/// What a follower does with the file the daemon names now.
pub enum Next {
    /// Another file: finish the old one, then read this from its start.
    Switch,
    /// The same file: go on (from the top if it was truncated meanwhile,
    /// which this did).
    Same,
}

/// Compares the file being read (`old`, if any) with the one the daemon
/// passed now; seeks `old` to its start when it was truncated in place.
pub fn next(old: Option<&mut File>, now: &File) -> Next {
    let Some(f) = old else {
        return Next::Switch;
    };
    let Ok(n) = now.metadata() else {
        return Next::Same;
    };
    let other = f
        .metadata()
        .map(|m| (m.dev(), m.ino()) != (n.dev(), n.ino()))
        .unwrap_or(true);
    if other {
        return Next::Switch;
    }
    let pos = f.stream_position().unwrap_or(0);
    if f.metadata().map(|m| m.len() < pos).unwrap_or(false) {
        let _ = f.seek(SeekFrom::Start(0));
    }
    Next::Same
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_starts_after_the_nth_newline_from_the_end() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\nbb\nccc\n").unwrap();
        assert_eq!(tail_start(&mut f, 1).unwrap(), 5);
        assert_eq!(tail_start(&mut f, 2).unwrap(), 2);
        assert_eq!(tail_start(&mut f, 3).unwrap(), 0);
        assert_eq!(tail_start(&mut f, 9).unwrap(), 0);
        assert_eq!(tail_start(&mut f, 0).unwrap(), 9);
    }
}
