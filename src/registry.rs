//! The schema registry, as the client reaches it: GET_SCHEMA (a topic's schema, latest or of a
//! version, from any broker) and GET_OR_CREATE_SCHEMA (register a schema, from the broker
//! that owns the topic). Versions never change once given, so the schema of a version is
//! fetched once per client and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{ConnectionError, Error, Result, ServerErrorCode};
use crate::protocol::commands;
use crate::protocol::topic::TopicName;
use crate::schema::{SchemaInfo, SchemaType, SchemaVersion};
use crate::session::Session;

/// A schema as the registry holds it, with the version it gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The version.
    pub version: SchemaVersion,
    /// The schema.
    pub info: SchemaInfo,
}

/// The schemas of versions already fetched, per topic (the schema name: the topic without its
/// partition suffix, as the broker keys them).
#[derive(Debug, Default)]
pub(crate) struct SchemaCache {
    versions: Mutex<HashMap<(String, SchemaVersion), Arc<SchemaInfo>>>,
}

impl SchemaCache {
    fn get(&self, name: &str, version: &SchemaVersion) -> Option<Arc<SchemaInfo>> {
        let map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(name.to_owned(), version.clone())).cloned()
    }

    fn put(&self, name: &str, version: SchemaVersion, info: Arc<SchemaInfo>) {
        let mut map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4096 {
            // A bound, not an eviction policy: versions are few in practice.
            map.clear();
        }
        map.insert((name.to_owned(), version), info);
    }
}

impl Session {
    /// GET_SCHEMA: the topic's schema at `version` (`None`: the latest); `Ok(None)` when the
    /// topic has no schema (or no such version).
    pub(crate) async fn get_schema(
        &self,
        topic: &TopicName,
        version: Option<&SchemaVersion>,
    ) -> Result<Option<RegisteredSchema>> {
        let name = topic.base().full_name().to_owned();
        if let Some(v) = version {
            if let Some(info) = self.schemas.get(&name, v) {
                return Ok(Some(RegisteredSchema {
                    version: v.clone(),
                    info: (*info).clone(),
                }));
            }
        }
        let wanted = version.map(|v| v.as_bytes().clone());
        let result = self
            .timed(
                crate::metrics::LookupKind::Schema,
                self.request_about(topic, "get schema", |id| {
                    commands::get_schema(id, &name, wanted.as_deref())
                }),
            )
            .await;
        let resp = match result {
            Ok(resp) => resp,
            // The broker's answer for a topic without a schema (or an unknown version).
            Err(e)
                if e.server_error()
                    .is_some_and(|s| s.code == ServerErrorCode::TopicNotFound) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let r = resp.get_schema_response.unwrap_or_default();
        let Some(schema) = r.schema else {
            return Ok(None);
        };
        let info = SchemaInfo::from_proto(&schema).map_err(Error::Schema)?;
        let version = match (r.schema_version, version) {
            (Some(v), _) if !v.is_empty() => SchemaVersion::new(v),
            (_, Some(v)) => v.clone(),
            _ => {
                return Err(Error::Connection(ConnectionError::Protocol(format!(
                    "GET_SCHEMA_RESPONSE for {name} carries a schema but no version"
                ))))
            }
        };
        let info = Arc::new(info);
        self.schemas.put(&name, version.clone(), info.clone());
        Ok(Some(RegisteredSchema {
            version,
            info: (*info).clone(),
        }))
    }

    /// The writer's schema of `version` on `topic`, shared (for decoding messages).
    pub(crate) async fn writer_schema(
        &self,
        topic: &TopicName,
        version: &SchemaVersion,
    ) -> Result<Option<Arc<SchemaInfo>>> {
        let name = topic.base().full_name().to_owned();
        if let Some(info) = self.schemas.get(&name, version) {
            return Ok(Some(info));
        }
        self.get_schema(topic, Some(version)).await?;
        Ok(self.schemas.get(&name, version))
    }

    /// GET_OR_CREATE_SCHEMA on the broker that owns `topic`: the version of `info`,
    /// registering it if the topic does not have it yet (and the compatibility check allows).
    pub(crate) async fn get_or_create_schema(
        &self,
        topic: &TopicName,
        info: &SchemaInfo,
    ) -> Result<SchemaVersion> {
        let Some(schema) = info.to_proto() else {
            return Err(Error::InvalidConfig(
                "the bytes schema has nothing to register".into(),
            ));
        };
        let owner = if topic.is_partition() {
            topic.clone()
        } else {
            // A partitioned topic's schema is registered through one of its partitions.
            match self.partitioned_metadata(topic).await? {
                0 => topic.clone(),
                _ => topic.partition(0),
            }
        };
        let conn = self.lookup(&owner).await?;
        let id = self.next_id();
        let resp = conn
            .request(
                id,
                "get or create schema",
                commands::get_or_create_schema(id, owner.full_name(), schema, None),
                Some(self.operation_timeout),
            )
            .await
            .map_err(|e| incompatible(e, topic.full_name(), info.kind))?;
        let version = resp
            .get_or_create_schema_response
            .and_then(|r| r.schema_version)
            .unwrap_or_default();
        let version = SchemaVersion::new(version);
        self.schemas.put(
            topic.base().full_name(),
            version.clone(),
            Arc::new(info.clone()),
        );
        Ok(version)
    }
}

/// The type of the schema a PRODUCER or SUBSCRIBE declares (none: bytes).
pub(crate) fn declared_kind(schema: Option<&crate::wire::proto::Schema>) -> SchemaType {
    schema
        .and_then(|s| SchemaType::from_wire(s.r#type))
        .unwrap_or_default()
}

/// Turns the broker's IncompatibleSchema answer to a producer, consumer or registration into
/// [`Error::IncompatibleSchema`]; other errors pass through.
pub(crate) fn incompatible(e: Error, topic: &str, schema: SchemaType) -> Error {
    match e.server_error() {
        Some(error) if error.code == ServerErrorCode::IncompatibleSchema => {
            Error::IncompatibleSchema {
                topic: topic.to_owned(),
                schema,
                check: crate::error::SchemaCheck::from_broker_message(&error.message),
                error: error.clone(),
            }
        }
        _ => e,
    }
}
