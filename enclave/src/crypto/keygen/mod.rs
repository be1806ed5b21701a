//! RSA key generation, bounded: one generation per vCPU at a time, and a per-principal limit on generations running.
//!
//! An RSA-4096 generation costs about a second of CPU (seconds in a debug build). Unbounded, a principal could keep
//! every core busy with CreateKey RSA_4096, GenerateDataKeyPair RSA_* or GetParametersForImport and starve everyone's
//! requests. A generation first takes a slot of its principal ([`Limits::rsa_per_principal`], refused at once with
//! `ThrottlingException` when the principal has that many running or queued, as AWS answers a request rate over its
//! quota), then a CPU permit (waits in line; the line is bounded by the per-principal slots).
//!
//! [`Limits::rsa_per_principal`]: crate::net::limits::Limits::rsa_per_principal

use crate::error::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bound on RSA key generation.
pub struct KeygenGate {
    cpu: Arc<Semaphore>,
    per_principal: usize,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// The right to run one RSA generation; releases its slots when dropped.
pub struct Ticket {
    _cpu: OwnedSemaphorePermit,
    slot: Slot,
}

struct Slot {
    running: Arc<Mutex<HashMap<String, usize>>>,
    principal: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Nothing in the critical sections panics, so a poisoned lock still holds a consistent map.
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.principal);
            }
        }
    }
}

impl KeygenGate {
    /// A gate with `cpus` concurrent generations in all and `per_principal` per principal (both at least 1).
    pub fn new(cpus: usize, per_principal: usize) -> Self {
        Self {
            cpu: Arc::new(Semaphore::new(cpus.clamp(1, Semaphore::MAX_PERMITS))),
            per_principal: per_principal.max(1),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A gate sized by the machine's vCPUs.
    pub fn per_vcpu(per_principal: usize) -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from), per_principal)
    }

    /// Takes a slot of `principal` (or fails with `ThrottlingException`) and waits for a CPU permit.
    pub async fn ticket(&self, principal: &str) -> Result<Ticket, Error> {
        let slot = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            let n = running.entry(principal.to_owned()).or_insert(0);
            if *n >= self.per_principal {
                return Err(Error::Throttling(format!(
                    "Rate exceeded: {principal} already has {} RSA key generations running; retry later",
                    self.per_principal
                )));
            }
            *n += 1;
            Slot { running: self.running.clone(), principal: principal.to_owned() }
        };
        let cpu = self.cpu.clone().acquire_owned().await.map_err(|_| Error::Internal("key generation gate".into()))?;
        Ok(Ticket { _cpu: cpu, slot })
    }

    /// How many generations `principal` has running or queued (for tests and metrics).
    pub fn running(&self, principal: &str) -> usize {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).get(principal).copied().unwrap_or(0)
    }
}

impl Ticket {
    /// The principal the ticket is for.
    pub fn principal(&self) -> &str {
        &self.slot.principal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_principal_limit_is_enforced_and_released() {
        let gate = KeygenGate::new(4, 2);
        let a1 = gate.ticket("a").await.unwrap();
        let _a2 = gate.ticket("a").await.unwrap();
        assert!(matches!(gate.ticket("a").await, Err(Error::Throttling(_))), "third concurrent generation of a");
        let _b = gate.ticket("b").await.unwrap();
        assert_eq!(gate.running("a"), 2);
        assert_eq!(a1.principal(), "a");
        drop(a1);
        assert_eq!(gate.running("a"), 1);
        assert!(gate.ticket("a").await.is_ok());
    }

    #[tokio::test]
    async fn cpu_permits_queue_generations() {
        let gate = Arc::new(KeygenGate::new(1, 8));
        let first = gate.ticket("a").await.unwrap();
        let g = gate.clone();
        let waiting = tokio::spawn(async move { g.ticket("b").await.map(|_| ()) });
        // The second waits for the only CPU permit (its slot is taken meanwhile) ...
        tokio::task::yield_now().await;
        assert_eq!(gate.running("b"), 1);
        assert!(!waiting.is_finished());
        // ... and runs once the first is done.
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(gate.running("b"), 0);
    }
}
