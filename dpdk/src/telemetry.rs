//! Registering counters with DPDK telemetry, so that `dpdk-telemetry.py` shows them.
//!
//! DPDK 22.11's telemetry callbacks carry no user pointer, so one C callback looks the
//! command up in a process-wide registry. Callbacks run on DPDK's telemetry thread; they
//! should read counters that workers publish (atomics), never touch a worker's state.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// A telemetry command's answer: name → value pairs (at most 256; names of letters,
/// digits, `_` and `-` only, up to 63 bytes: DPDK skips other names).
pub type TelemetryFn = Box<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

fn registry() -> &'static Mutex<HashMap<String, TelemetryFn>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, TelemetryFn>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

extern "C" fn answer(
    cmd: *const c_char,
    _params: *const c_char,
    data: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    if cmd.is_null() || data.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: DPDK passes the NUL-terminated command string it matched.
    let cmd = unsafe { CStr::from_ptr(cmd) }
        .to_string_lossy()
        .into_owned();
    let values = {
        let Ok(map) = registry().lock() else {
            return -libc::EIO;
        };
        match map.get(&cmd) {
            // A panicking callback must not unwind into C.
            Some(f) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(v) => v,
                Err(_) => return -libc::EIO,
            },
            None => return -libc::ENOENT,
        }
    };
    // SAFETY: data is the telemetry buffer DPDK handed to this callback.
    unsafe { dpdk_sys::rte_tel_data_start_dict(data) };
    for (name, value) in values
        .into_iter()
        .take(dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize)
    {
        let Ok(name) = CString::new(name) else {
            continue;
        };
        // SAFETY: valid buffer and NUL-terminated name; DPDK copies the name and rejects
        // names that are too long (returning an error we ignore: that entry is skipped).
        unsafe { dpdk_sys::rte_tel_data_add_dict_u64(data, name.as_ptr(), value) };
    }
    0
}

/// Registers `cmd` (it must start with `/`, e.g. `/l4lab/stats`) answering with `f`.
/// Registering the same command again replaces the function.
pub fn register(cmd: &str, help: &str, f: TelemetryFn) -> Result<()> {
    crate::eal::ensure_live()?;
    let already = {
        let mut map = registry()
            .lock()
            .map_err(|_| Error::InvalidArgument("telemetry registry poisoned".into()))?;
        map.insert(cmd.to_owned(), f).is_some()
    };
    if already {
        return Ok(());
    }
    let c_cmd = CString::new(cmd)
        .map_err(|_| Error::InvalidArgument(format!("command {cmd:?} has a NUL")))?;
    let c_help = CString::new(help)
        .map_err(|_| Error::InvalidArgument(format!("help {help:?} has a NUL")))?;
    // SAFETY: DPDK copies both strings; `answer` matches telemetry_cb and stays valid for
    // the life of the process.
    let rc = unsafe {
        dpdk_sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(answer), c_help.as_ptr())
    };
    if rc != 0 {
        if let Ok(mut map) = registry().lock() {
            map.remove(cmd);
        }
        return Err(Error::dpdk("rte_telemetry_register_cmd", rc));
    }
    Ok(())
}
