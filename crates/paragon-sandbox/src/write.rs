//! ConfigMaps written as `kubectl apply` writes them (client-side apply): `POST
//! .../namespaces/{ns}/configmaps` creates one (after kubectl's GET found none), and `PATCH
//! .../configmaps/{name}` with a strategic-merge or JSON merge patch changes it. The API server
//! gives the created object its uid, resourceVersion and creationTimestamp and answers with the
//! object (201 on create, 200 on patch); a name taken is 409 `AlreadyExists`, a namespace that
//! does not exist 404. A ConfigMap has no list that a strategic merge patch merges by key
//! (its `data` and `binaryData` are maps, as are labels and annotations), so both patch types
//! are RFC 7386 merges here. `dryRun=All` answers without storing, as the API server does.
//!
//! kubectl validates what it sends unless `--validate=false`: it asks `/openapi/v3` whether
//! the server takes `fieldValidation` on the kind's PATCH (`openapi_v3`, `openapi_v3_core`);
//! the sandbox says it does, for ConfigMaps, as the real `/openapi/v3/api/v1` document says
//! for every core kind, and kubectl leaves validation to the server.
//!
//! Every other write stays refused (the rest of the sandbox is read-only).

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::api::Api;
use super::reply::{Reply, json as json_reply, reply, status};
use super::rng::Rng;
use super::store::{Cell, Entry, Res, World};

/// The API server's own limit on a request body (3 MiB); a ConfigMap holds at most 1 MiB.
const BODY_MAX: usize = 3 * 1024 * 1024;

/// The hash kubectl caches the core group's document under (any stable string).
const CORE_HASH: &str = "paragon-sandbox-core-v1";

/// Whether `req` is a write this module answers.
pub(crate) fn is_configmap_write(req: &Request<Incoming>) -> bool {
    let segs: Vec<&str> = req.uri().path().split('/').skip(1).collect();
    matches!(
        (req.method().as_str(), segs.as_slice()),
        ("POST", ["api", "v1", "namespaces", _, "configmaps"])
            | ("PATCH", ["api", "v1", "namespaces", _, "configmaps", _])
    )
}

/// `/openapi/v3`: where each group version's document is.
pub(crate) fn openapi_v3() -> Reply {
    json_reply(&json!({
        "paths": {
            "api/v1": { "serverRelativeURL": format!("/openapi/v3/api/v1?hash={CORE_HASH}") }
        }
    }))
}

/// `/openapi/v3/api/v1`: the ConfigMap paths with their operations' parameters, in the
/// shape of the real document (operations tagged with `x-kubernetes-group-version-kind`).
pub(crate) fn openapi_v3_core() -> Reply {
    let gvk = json!({ "group": "", "version": "v1", "kind": "ConfigMap" });
    let query = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let write_params = json!([
        query("dryRun"),
        query("fieldManager"),
        query("fieldValidation")
    ]);
    let body = |types: &[&str]| {
        let content: serde_json::Map<String, Value> = types
            .iter()
            .map(|t| {
                (
                    t.to_string(),
                    json!({ "schema": { "$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap" } }),
                )
            })
            .collect();
        json!({ "content": content, "required": true })
    };
    let op = |id: &str, action: &str, request: Option<Value>| {
        let mut op = json!({
            "operationId": id,
            "tags": ["core_v1"],
            "parameters": write_params,
            "responses": { "200": { "description": "OK" } },
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        });
        if let Some(r) = request {
            op["requestBody"] = r;
        }
        op
    };
    json_reply(&json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.31.0" },
        "paths": {
            "/api/v1/namespaces/{namespace}/configmaps": {
                "post": op("createCoreV1NamespacedConfigMap", "post", Some(body(&["*/*"]))),
                "parameters": [{ "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } }],
            },
            "/api/v1/namespaces/{namespace}/configmaps/{name}": {
                "patch": op("patchCoreV1NamespacedConfigMap", "patch", Some(body(&[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ]))),
                "parameters": [
                    { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } },
                ],
            },
        },
        "components": { "schemas": { "io.k8s.api.core.v1.ConfigMap": {
            "description": "ConfigMap holds configuration data for pods to consume.",
            "type": "object",
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "metadata": { "allOf": [{ "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" }], "default": {} },
                "data": { "type": "object", "additionalProperties": { "type": "string", "default": "" } },
                "binaryData": { "type": "object", "additionalProperties": { "type": "string", "format": "byte" } },
                "immutable": { "type": "boolean" },
            },
            "x-kubernetes-group-version-kind": [gvk],
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
            "type": "object",
            "properties": {
                "annotations": { "type": "object", "additionalProperties": { "type": "string", "default": "" } },
                "labels": { "type": "object", "additionalProperties": { "type": "string", "default": "" } },
                "creationTimestamp": { "type": "string", "format": "date-time" },
                "finalizers": { "type": "array", "items": { "type": "string", "default": "" }, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge" },
                "generateName": { "type": "string" },
                "name": { "type": "string" },
                "namespace": { "type": "string" },
                "resourceVersion": { "type": "string" },
                "uid": { "type": "string" },
            },
        } } },
    }))
}

/// Answers a ConfigMap POST or PATCH (`is_configmap_write`).
pub(crate) async fn configmap(api: Arc<Api>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path.split('/').skip(1).map(str::to_string).collect();
    let dry_run = req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "dryRun" && v == "All")
    });
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(req.into_body(), BODY_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("the request body could not be read: {e}"),
                None,
            );
        }
    };
    let namespace = segs.get(3).map(String::as_str).unwrap_or("");
    let now = jiff::Timestamp::now().as_second();
    // One write at a time: the lock is held from reading the world to swapping it.
    let mut guard = match api.world.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let written = match segs.get(5) {
        None => create(&guard, namespace, &body, now),
        Some(name) => patch(&guard, namespace, name, &content_type, &body),
    };
    match written {
        Ok(Written {
            world,
            object,
            created,
        }) => {
            if !dry_run {
                *guard = Arc::new(world);
            }
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            reply(
                code,
                "application/json",
                serde_json::to_vec(&object).unwrap_or_default(),
            )
        }
        Err(refusal) => *refusal,
    }
}

/// A refusal: the reply that says why (boxed, it is large).
type Refused = Box<Reply>;

/// A write's new world and the object as stored.
struct Written {
    world: World,
    object: ConfigMap,
    created: bool,
}

fn bad(message: &str) -> Reply {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

/// The world with `body` (a ConfigMap) created in `namespace`.
fn create(world: &World, namespace: &str, body: &[u8], now: i64) -> Result<Written, Refused> {
    let mut cm: ConfigMap = serde_json::from_slice(body)
        .map_err(|e| bad(&format!("the body is not a ConfigMap: {e}")))?;
    match cm.metadata.namespace.as_deref() {
        None => cm.metadata.namespace = Some(namespace.to_string()),
        Some(ns) if ns == namespace => {}
        Some(ns) => {
            return Err(Box::new(bad(&format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
            ))));
        }
    }
    let Some(name) = cm.metadata.name.clone().filter(|n| !n.is_empty()) else {
        return Err(Box::new(status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required",
            None,
        )));
    };
    if world.get(Res::Namespaces, "", namespace).is_none() {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("namespaces \"{namespace}\" not found"),
            Some(("namespaces", namespace)),
        )));
    }
    if world.get(Res::ConfigMaps, namespace, &name).is_some() {
        return Err(Box::new(status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("configmaps \"{name}\" already exists"),
            Some(("configmaps", &name)),
        )));
    }
    let mut rng = Rng::new(now.unsigned_abs() ^ name.len() as u64);
    cm.metadata.uid = Some(rng.uid());
    cm.metadata.creation_timestamp = jiff::Timestamp::from_second(now).ok().map(Time);
    store(world, cm, now, true)
}

/// The world with ConfigMap `namespace/name` patched by `body`.
fn patch(
    world: &World,
    namespace: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Written, Refused> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !matches!(
        media,
        "application/strategic-merge-patch+json" | "application/merge-patch+json"
    ) {
        return Err(Box::new(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the sandbox takes strategic-merge and merge patches, not {media:?}"),
            None,
        )));
    }
    let Some(entry) = world.get(Res::ConfigMaps, namespace, name) else {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("configmaps \"{name}\" not found"),
            Some(("configmaps", name)),
        )));
    };
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| bad(&format!("the patch is not JSON: {e}")))?;
    let mut current = Vec::new();
    entry.write_object(&mut current);
    let mut object: Value = serde_json::from_slice(&current).map_err(|e| internal(&e))?;
    merge(&mut object, &patch);
    let cm: ConfigMap = serde_json::from_value(object)
        .map_err(|e| bad(&format!("the patched object is not a ConfigMap: {e}")))?;
    if cm.metadata.name.as_deref() != Some(name)
        || cm.metadata.namespace.as_deref() != Some(namespace)
    {
        return Err(Box::new(bad("a patch cannot change the name or namespace")));
    }
    let created = entry.cells.iter().find_map(|c| match c {
        Cell::Age(t) => Some(*t),
        _ => None,
    });
    store(world, cm, created.unwrap_or(0), false)
}

fn internal(e: &dyn std::fmt::Display) -> Reply {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        &e.to_string(),
        None,
    )
}

/// RFC 7386: `null` removes a key, an object merges into an object, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The world with `cm` in place of the ConfigMap of its name, at the next resourceVersion.
fn store(world: &World, mut cm: ConfigMap, created: i64, new: bool) -> Result<Written, Refused> {
    let version = world.resource_version + 1;
    cm.metadata.resource_version = Some(version.to_string());
    let (namespace, name) = (
        cm.metadata.namespace.clone().unwrap_or_default(),
        cm.metadata.name.clone().unwrap_or_default(),
    );
    let keys =
        cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    // The table row: NAME, DATA, AGE (see generate's config maps).
    let cells = vec![
        Cell::text(name.as_str()),
        Cell::Int(keys as i64),
        Cell::Age(created),
    ];
    let entry = Entry::new(Res::ConfigMaps, cm.clone(), vec![], cells).map_err(|e| internal(&e))?;
    Ok(Written {
        world: world.replacing(Res::ConfigMaps, &namespace, &name, entry),
        object: cm,
        created: new,
    })
}

#[cfg(test)]
mod tests {
    use super::merge;
    use serde_json::json;

    #[test]
    fn a_merge_patch_replaces_merges_and_removes_keys() {
        let mut v = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}});
        merge(
            &mut v,
            &json!({"metadata": {"labels": {"b": null, "c": "3"}}, "data": {"x": "2"}}),
        );
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "data": {"x": "2"}})
        );
    }
}
