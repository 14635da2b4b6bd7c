//! Free space on the volume, for the pre-flight check.

use std::path::Path;

use crate::error::{Result, StoreError};

/// Bytes available to this (unprivileged) process on the filesystem holding `path` (its nearest existing
/// ancestor).
pub fn available_bytes(path: &Path) -> Result<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    // statvfs(3) through libc: std has no portable free-space query and this is one call.
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| StoreError::Config(format!("path {p:?} contains a NUL byte")))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(StoreError::io(
            "statvfs",
            p,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_something_for_a_missing_child_of_tmp() {
        let n = super::available_bytes(&std::env::temp_dir().join("does/not/exist")).unwrap();
        assert!(n > 0);
    }
}
