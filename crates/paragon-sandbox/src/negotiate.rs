//! Content negotiation: which shape of answer (full objects, metadata only, a server-side
//! table) an `Accept` header asks for, as the API server reads it. It knows nothing of
//! routing or of the objects themselves.

use super::store::{Include, Shape};

/// Picks the first media range of `accept` the sandbox can produce.
pub(super) fn negotiate(accept: &str, include: Include, list: bool) -> Option<Shape> {
    if accept.trim().is_empty() {
        return Some(Shape::Full);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let mut as_ = None;
        let mut group = None;
        let mut version = None;
        for p in parts {
            match p.split_once('=') {
                Some(("as", v)) => as_ = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        match (as_, group, version) {
            (None, _, _) => return Some(Shape::Full),
            (Some("Table"), Some("meta.k8s.io"), Some(v @ ("v1" | "v1beta1"))) => {
                return Some(Shape::Table {
                    beta: v == "v1beta1",
                    include,
                });
            }
            (Some("PartialObjectMetadataList"), Some("meta.k8s.io"), Some("v1")) if list => {
                return Some(Shape::Metadata);
            }
            (Some("PartialObjectMetadata"), Some("meta.k8s.io"), Some("v1")) if !list => {
                return Some(Shape::Metadata);
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_request_gets_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(accept, Include::Metadata, true),
            Some(Shape::Table {
                beta: false,
                include: Include::Metadata
            })
        );
    }

    #[test]
    fn aggregated_discovery_and_protobuf_fall_back_to_json() {
        let accept =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(accept, Include::Metadata, true),
            Some(Shape::Full)
        );
        let accept = "application/vnd.kubernetes.protobuf, */*";
        assert_eq!(
            negotiate(accept, Include::Metadata, true),
            Some(Shape::Full)
        );
        assert_eq!(negotiate("", Include::Metadata, false), Some(Shape::Full));
    }

    #[test]
    fn metadata_lists_and_unacceptable_types() {
        let accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(
            negotiate(accept, Include::Metadata, true),
            Some(Shape::Metadata)
        );
        assert_eq!(
            negotiate(
                "application/vnd.kubernetes.protobuf",
                Include::Metadata,
                true
            ),
            None
        );
        assert_eq!(negotiate("text/html", Include::Metadata, true), None);
    }
}
