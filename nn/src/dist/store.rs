//! The rendezvous key-value store (c10d's TCPStore through the shim), and the C strings and error buffers the
//! shim's calls share.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Duration;

use anyhow::{bail, Result};

use super::Env;

extern "C" {
    fn lensfind_store_new(
        host: *const c_char,
        port: c_int,
        is_server: c_int,
        world: c_int,
        timeout_ms: c_int,
        prefix: *const c_char,
        err: *mut c_char,
        err_len: c_int,
    ) -> *mut c_void;
    fn lensfind_store_free(store: *mut c_void);
    fn lensfind_store_set(
        store: *mut c_void,
        key: *const c_char,
        value: *const u8,
        len: c_int,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
    fn lensfind_store_check(store: *mut c_void, key: *const c_char, err: *mut c_char, err_len: c_int) -> c_int;
    fn lensfind_store_get(
        store: *mut c_void,
        key: *const c_char,
        out: *mut u8,
        cap: c_int,
        err: *mut c_char,
        err_len: c_int,
    ) -> c_int;
}

pub(super) const ERR_LEN: usize = 1024;

pub(super) fn err_buf() -> Vec<c_char> {
    vec![0; ERR_LEN]
}

pub(super) fn err_text(buf: &[c_char]) -> String {
    // SAFETY: the shim NUL-terminates within the buffer (it was zeroed and has ERR_LEN bytes).
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

pub(super) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("no NUL left")
}

pub(super) fn timeout_ms(d: Duration) -> c_int {
    c_int::try_from(d.as_millis()).unwrap_or(c_int::MAX)
}

/// A client of the rendezvous key-value store (rank 0's also serves it), with every key under the prefix of
/// this attempt of the group (see [`Env::attempt`]).
pub(super) struct Store(pub(super) *mut c_void);

/// Where the keys of attempt `attempt` live: what lensfind and its process group write go under it.
pub(super) fn attempt_prefix(attempt: usize) -> String {
    format!("lensfind/attempt_{attempt}")
}

// SAFETY: c10d's TCPStore serialises its operations internally; each Store has one owner at a time.
unsafe impl Send for Store {}

impl Store {
    pub(super) fn connect(env: &Env, server: bool, timeout: Duration) -> Result<Store> {
        let host = c_string(&env.master_addr);
        let prefix = c_string(&attempt_prefix(env.attempt));
        let mut err = err_buf();
        // SAFETY: valid C strings and an error buffer of ERR_LEN bytes.
        let p = unsafe {
            lensfind_store_new(
                host.as_ptr(),
                c_int::from(env.master_port),
                c_int::from(server),
                env.world as c_int,
                timeout_ms(timeout),
                prefix.as_ptr(),
                err.as_mut_ptr(),
                ERR_LEN as c_int,
            )
        };
        if p.is_null() {
            bail!("rendezvous at {}:{} failed: {}", env.master_addr, env.master_port, err_text(&err));
        }
        Ok(Store(p))
    }

    pub(super) fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let k = c_string(key);
        let mut err = err_buf();
        // SAFETY: a live store, a C string, a byte slice and its length, an error buffer.
        let rc = unsafe {
            lensfind_store_set(
                self.0,
                k.as_ptr(),
                value.as_ptr(),
                value.len() as c_int,
                err.as_mut_ptr(),
                ERR_LEN as c_int,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(err_text(&err))
        }
    }

    /// The value of `key`, None when it is not set; Err when the store is gone.
    pub(super) fn try_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let k = c_string(key);
        let mut err = err_buf();
        // SAFETY: as above.
        match unsafe { lensfind_store_check(self.0, k.as_ptr(), err.as_mut_ptr(), ERR_LEN as c_int) } {
            0 => return Ok(None),
            1 => {}
            _ => return Err(err_text(&err)),
        }
        let mut out = vec![0u8; 4096];
        // SAFETY: out has the capacity passed.
        let n = unsafe {
            lensfind_store_get(
                self.0,
                k.as_ptr(),
                out.as_mut_ptr(),
                out.len() as c_int,
                err.as_mut_ptr(),
                ERR_LEN as c_int,
            )
        };
        if n < 0 {
            return Err(err_text(&err));
        }
        out.truncate((n as usize).min(4096));
        Ok(Some(out))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by lensfind_store_new, freed once.
        unsafe { lensfind_store_free(self.0) }
    }
}
