//! Paginated lists: pages of 500 (kubectl's default), each handed to the caller and dropped,
//! so memory stays bounded by one page whatever the cluster's size.

use std::fmt::Debug;

use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::core::ObjectMeta;
use serde::de::DeserializeOwned;

/// Objects per page.
pub const PAGE: u32 = 500;

/// Lists every object `lp` selects, one page at a time; `page` sees each page once.
pub async fn each_page<K, F>(api: &Api<K>, lp: ListParams, mut page: F) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(Vec<K>),
{
    let mut lp = lp.limit(PAGE);
    loop {
        let list = api.list(&lp).await?;
        let next = list.metadata.continue_.filter(|t| !t.is_empty());
        page(list.items);
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(()),
        }
    }
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
    let mut lp = lp.limit(PAGE);
    loop {
        let list = api.list_metadata(&lp).await?;
        let next = list.metadata.continue_.filter(|t| !t.is_empty());
        page(
            list.items
                .into_iter()
                .map(|p: PartialObjectMeta<K>| p.metadata)
                .collect(),
        );
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(()),
        }
    }
}
