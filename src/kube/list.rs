//! Paginated lists: pages of 500 (kubectl's default) unless the caller's `ListParams` set a
//! limit, each handed to the caller and dropped, so memory stays bounded by one page whatever
//! the cluster's size.

use std::fmt::Debug;
use std::future::Future;

use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::core::{ObjectList, ObjectMeta};
use serde::de::DeserializeOwned;

/// Implements `kube::Resource` for `$lean`, a lean view of the built-in type `$as`: listed at
/// the same path, with the same kind and scope, its metadata at `self.$($meta).+`. A list of
/// the lean type reads the same JSON and builds only what the view keeps; serde skips the
/// rest without allocating it.
macro_rules! listed_as {
    ($lean:ty, $as:ty, $($meta:tt).+) => {
        impl kube::Resource for $lean {
            type DynamicType = ();
            type Scope = <$as as kube::Resource>::Scope;

            fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
                <$as as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> std::borrow::Cow<'_, str> {
                <$as as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> std::borrow::Cow<'_, str> {
                <$as as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
                <$as as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &kube::api::ObjectMeta {
                &self.$($meta).+
            }
            fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
                &mut self.$($meta).+
            }
        }
    };
}
pub(crate) use listed_as;

/// Objects per page, unless the caller's `ListParams` say.
pub const PAGE: u32 = 500;

/// Lists every object `lp` selects, one page at a time; `page` sees each page once.
pub async fn each_page<K, F>(api: &Api<K>, lp: ListParams, mut page: F) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(Vec<K>),
{
    each_page_then(api, lp, |items| {
        page(items);
        std::future::ready(())
    })
    .await
}

/// As `each_page`, with an asynchronous `page` (one that hands the page on, waiting when the
/// receiver is behind): the next page is asked for once it is done.
pub async fn each_page_then<K, F, Fut>(
    api: &Api<K>,
    lp: ListParams,
    page: F,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(Vec<K>) -> Fut,
    Fut: Future<Output = ()>,
{
    paged(lp, |lp| async move { api.list(&lp).await }, page).await
}

/// As `each_page`, with metadata only (names, labels, annotations): no spec, status or data
/// crosses the wire.
pub async fn each_metadata_page<K, F>(
    api: &Api<K>,
    lp: ListParams,
    mut page: F,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(Vec<ObjectMeta>),
{
    paged(
        lp,
        |lp| async move { api.list_metadata(&lp).await },
        |items: Vec<PartialObjectMeta<K>>| {
            page(items.into_iter().map(|p| p.metadata).collect());
            std::future::ready(())
        },
    )
    .await
}

/// Asks `list` for each page of `lp` in turn (following the continue token) and hands its
/// items to `page`.
async fn paged<T, L, LF, F, Fut>(
    lp: ListParams,
    mut list: L,
    mut page: F,
) -> Result<(), kube::Error>
where
    T: Clone,
    L: FnMut(ListParams) -> LF,
    LF: Future<Output = Result<ObjectList<T>, kube::Error>>,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut lp = match lp.limit {
        Some(_) => lp,
        None => lp.limit(PAGE),
    };
    loop {
        let asked = std::time::Instant::now();
        let list = list(lp.clone()).await?;
        let next = list.metadata.continue_.filter(|t| !t.is_empty());
        let (items, fetched) = (list.items.len(), asked.elapsed());
        page(list.items).await;
        tracing::debug!(
            items,
            fetched_ms = fetched.as_millis() as u64,
            handled_ms = (asked.elapsed() - fetched).as_millis() as u64,
            "page"
        );
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(()),
        }
    }
}
