//! Lock helpers shared by every module that keeps state behind a std lock.
//!
//! A poisoned lock (a thread panicked holding it) is recovered rather than propagated:
//! each module keeps its invariant that every mutation under a lock completes before
//! anything that could panic, so the data is consistent, and one failed request must not
//! take every later one down with it.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
