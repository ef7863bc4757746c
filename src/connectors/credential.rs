//! The cached credential a connector sends with every call (a Tripletex session token, an
//! OAuth2 bearer token), shared by the connector's concurrent calls.
//!
//! The lock is held across a fetch, so callers that arrive while a credential is being
//! fetched wait for that one fetch instead of each starting their own. After the payroll
//! system refused a credential, `replace` fetches a new one unless another caller already did.

use super::Error;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use std::future::Future;
use tokio::sync::Mutex;

/// A credential and the instant it must be fetched again.
#[derive(Debug, Clone)]
pub struct Credential {
    pub value: Secret,
    pub renew_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct CredentialCache {
    slot: Mutex<Option<Credential>>,
}

impl CredentialCache {
    /// The cached credential, or a new one from `fetch` when there is none or it is due.
    pub async fn current<F, Fut>(&self, now: DateTime<Utc>, fetch: F) -> Result<Secret, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credential, Error>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| now < c.renew_at) {
            return Ok(c.value.clone());
        }
        Self::refill(&mut slot, fetch).await
    }

    /// A new credential after `stale` was refused, unless another caller already replaced it.
    pub async fn replace<F, Fut>(
        &self,
        stale: &Secret,
        now: DateTime<Utc>,
        fetch: F,
    ) -> Result<Secret, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credential, Error>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot
            .as_ref()
            .filter(|c| &c.value != stale && now < c.renew_at)
        {
            return Ok(c.value.clone());
        }
        *slot = None;
        Self::refill(&mut slot, fetch).await
    }

    async fn refill<F, Fut>(slot: &mut Option<Credential>, fetch: F) -> Result<Secret, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credential, Error>>,
    {
        let fresh = fetch().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    /// A fetch that counts itself and hands out "t1", "t2", ... valid for 60 s from `now`.
    fn fetcher(
        count: &Arc<AtomicU32>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Credential, Error>> {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::task::yield_now().await;
            Ok(Credential {
                value: Secret::new(format!("t{n}")),
                renew_at: now + Duration::seconds(60),
            })
        }
    }

    #[tokio::test]
    async fn a_credential_is_fetched_once_and_again_when_due() {
        let cache = CredentialCache::default();
        let count = Arc::new(AtomicU32::new(0));
        let a = cache.current(at(0), || fetcher(&count, at(0))).await;
        let b = cache.current(at(59), || fetcher(&count, at(59))).await;
        assert_eq!(a.ok().map(|s| s.expose().to_owned()), Some("t1".into()));
        assert_eq!(b.ok().map(|s| s.expose().to_owned()), Some("t1".into()));
        let c = cache.current(at(60), || fetcher(&count, at(60))).await;
        assert_eq!(c.ok().map(|s| s.expose().to_owned()), Some("t2".into()));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(CredentialCache::default());
        let count = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, count) = (cache.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .current(at(0), || fetcher(&count, at(0)))
                    .await
                    .is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap_or(false));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_credential_is_replaced_once() {
        let cache = CredentialCache::default();
        let count = Arc::new(AtomicU32::new(0));
        let stale = cache
            .current(at(0), || fetcher(&count, at(0)))
            .await
            .unwrap_or_else(|_| Secret::new(String::new()));
        // Two callers saw `stale` refused: the first replaces it, the second gets the new one.
        let first = cache
            .replace(&stale, at(1), || fetcher(&count, at(1)))
            .await;
        let second = cache
            .replace(&stale, at(1), || fetcher(&count, at(1)))
            .await;
        assert_eq!(first.ok().map(|s| s.expose().to_owned()), Some("t2".into()));
        assert_eq!(
            second.ok().map(|s| s.expose().to_owned()),
            Some("t2".into())
        );
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_leaves_nothing_cached() {
        let cache = CredentialCache::default();
        let failed = cache
            .current(at(0), || async {
                Err(Error::Network("token endpoint unreachable".into()))
            })
            .await;
        assert!(failed.is_err());
        let count = Arc::new(AtomicU32::new(0));
        assert!(cache
            .current(at(0), || fetcher(&count, at(0)))
            .await
            .is_ok());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
