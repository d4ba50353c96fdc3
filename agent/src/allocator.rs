//! Settings of mimalloc, the global allocator of the binaries that run tasks (`sluice-agent`, `sluice-standalone`).

/// mimalloc's `mi_option_purge_delay` (the 16th entry of `mi_option_e` in mimalloc.h, v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays committed before mimalloc returns it to the OS. mimalloc 3 waits 1,000 ms (mimalloc 2
/// waited 10 ms): a task moving records at full speed frees and allocates its batches continuously, so with the
/// long delay its RSS carried ~10-20 MB of freed pages (PostgreSQL CDC at full speed: peak 94 -> 84 MB, median
/// 78 -> 54 MB; the file source's throughput unchanged).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Sets the allocator's options; call first thing in `main`. An operator's `MIMALLOC_PURGE_DELAY` wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option of the linked mimalloc; valid at any time, from any thread.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn purge_delay_is_the_option_set() {
        super::tune();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a plain integer option.
            #[allow(unsafe_code)]
            let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
            assert_eq!(value, super::PURGE_DELAY_MS);
        }
    }
}
