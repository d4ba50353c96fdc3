//! The admin gRPC service: a thin tonic adapter over [`ConnectApi`] that maps proto messages to the API's types
//! and [`ApiErrorKind`]s to gRPC codes (the message stays Kafka Connect's), plus server reflection so `grpcurl`
//! works without the `.proto` files.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sluice_connectors::ConfigMap;
use sluice_connectors::config::{ConfigInfo as ApiConfigInfo, ConfigInfos as ApiConfigInfos, ConfigKeyInfo};
use sluice_connectors::registry::PluginInfo as ApiPluginInfo;
use sluice_proto::admin as pb;
use sluice_proto::admin::admin_service_server::{AdminService, AdminServiceServer};
use tonic::{Request, Response, Status};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};
use tonic_reflection::server::v1alpha;

use crate::api::{
    ApiError, ApiErrorKind, ConnectApi, ConnectorInfo, ConnectorOffset, ConnectorOffsets, ConnectorStateInfo,
    ConnectorTaskId, LoggerLevel, LoggerScope, ServerInfo, TargetState, TaskInfo, TaskStateInfo,
};

/// Implements `sluice.admin.v1.AdminService` on top of the service layer.
#[derive(Clone)]
pub struct AdminGrpc {
    api: Arc<dyn ConnectApi>,
}

impl AdminGrpc {
    pub fn new(api: Arc<dyn ConnectApi>) -> Self {
        AdminGrpc { api }
    }

    /// The tonic service to add to a `tonic::transport::Server`.
    pub fn into_server(self) -> AdminServiceServer<AdminGrpc> {
        AdminServiceServer::new(self)
    }
}

/// Server reflection (`grpc.reflection.v1`, what grpcurl asks first) for both Sluice packages, so `grpcurl`
/// and UIs work without the `.proto` files.
pub fn reflection_service() -> ServerReflectionServer<impl ServerReflection> {
    reflection_builder()
        .build_v1()
        .expect("the descriptor set compiled into sluice-proto is valid (checked by a unit test)")
}

/// The same for older clients that only speak `grpc.reflection.v1alpha`; add it next to
/// [`reflection_service`].
pub fn reflection_service_v1alpha() -> v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection> {
    reflection_builder()
        .build_v1alpha()
        .expect("the descriptor set compiled into sluice-proto is valid (checked by a unit test)")
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sluice_proto::FILE_DESCRIPTOR_SET)
}

/// The gRPC status for an API error: same message, the code the proto's header comment promises.
pub fn status_of(error: ApiError) -> Status {
    let code = match error.kind {
        ApiErrorKind::BadRequest | ApiErrorKind::PayloadTooLarge => tonic::Code::InvalidArgument,
        ApiErrorKind::NotFound => tonic::Code::NotFound,
        ApiErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
        ApiErrorKind::Conflict => tonic::Code::FailedPrecondition,
        ApiErrorKind::Unauthorized => tonic::Code::Unauthenticated,
        ApiErrorKind::Forbidden => tonic::Code::PermissionDenied,
        ApiErrorKind::Unavailable => tonic::Code::Unavailable,
        ApiErrorKind::Internal => tonic::Code::Internal,
    };
    Status::new(code, error.message)
}

type GrpcResult<T> = Result<Response<T>, Status>;

fn reply<T, U: From<T>>(result: Result<T, ApiError>) -> GrpcResult<U> {
    result.map(|value| Response::new(U::from(value))).map_err(status_of)
}

fn empty(result: Result<(), ApiError>) -> GrpcResult<pb::Empty> {
    result.map(|()| Response::new(pb::Empty {})).map_err(status_of)
}

#[tonic::async_trait]
impl AdminService for AdminGrpc {
    async fn get_server_info(&self, _request: Request<pb::GetServerInfoRequest>) -> GrpcResult<pb::ServerInfo> {
        reply(self.api.server_info().await)
    }

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> GrpcResult<pb::ListConnectorsResponse> {
        let pb::ListConnectorsRequest { expand_status, expand_info } = request.into_inner();
        let names = self.api.list_connectors().await.map_err(status_of)?;
        let mut expanded = Vec::new();
        if expand_status || expand_info {
            // One pass for every status, as the REST gateway does.
            let mut statuses =
                if expand_status { self.api.connector_statuses().await.map_err(status_of)? } else { BTreeMap::new() };
            for name in &names {
                // Deleted since the listing: leave it out, as the REST gateway does.
                let status = if expand_status {
                    match statuses.remove(name) {
                        Some(status) => Some(status.into()),
                        None => continue,
                    }
                } else {
                    None
                };
                let info = if expand_info {
                    match self.api.connector_info(name).await {
                        Ok(info) => Some(info.into()),
                        Err(e) if e.kind == ApiErrorKind::NotFound => continue,
                        Err(e) => return Err(status_of(e)),
                    }
                } else {
                    None
                };
                expanded.push(pb::ExpandedConnector { name: name.clone(), status, info });
            }
        }
        Ok(Response::new(pb::ListConnectorsResponse { names, expanded }))
    }

    async fn create_connector(&self, request: Request<pb::CreateConnectorRequest>) -> GrpcResult<pb::ConnectorInfo> {
        let request = request.into_inner();
        let initial_state = match pb::InitialState::try_from(request.initial_state) {
            Ok(pb::InitialState::Unspecified | pb::InitialState::Running) => TargetState::Running,
            Ok(pb::InitialState::Paused) => TargetState::Paused,
            Ok(pb::InitialState::Stopped) => TargetState::Stopped,
            Err(_) => {
                return Err(Status::invalid_argument(format!("Unknown initial_state {}", request.initial_state)));
            }
        };
        let name = Some(request.name).filter(|name| !name.is_empty());
        let create = crate::rest::create_request(name, to_config(request.config), initial_state).map_err(status_of)?;
        reply(self.api.create_connector(create).await)
    }

    async fn get_connector(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::ConnectorInfo> {
        reply(self.api.connector_info(&request.into_inner().name).await)
    }

    async fn get_connector_config(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::ConnectorConfig> {
        let config = self.api.connector_config(&request.into_inner().name).await.map_err(status_of)?;
        Ok(Response::new(pb::ConnectorConfig { config: to_proto_map(config) }))
    }

    async fn put_connector_config(
        &self,
        request: Request<pb::PutConnectorConfigRequest>,
    ) -> GrpcResult<pb::PutConnectorConfigResponse> {
        let request = request.into_inner();
        let (created, info) =
            self.api.put_connector_config(&request.name, to_config(request.config)).await.map_err(status_of)?;
        Ok(Response::new(pb::PutConnectorConfigResponse { created, info: Some(info.into()) }))
    }

    async fn patch_connector_config(
        &self,
        request: Request<pb::PatchConnectorConfigRequest>,
    ) -> GrpcResult<pb::ConnectorInfo> {
        let request = request.into_inner();
        if let Some(key) = request.delete.iter().find(|key| request.set.contains_key(*key)) {
            return Err(Status::invalid_argument(format!("Key {key} is both set and deleted")));
        }
        let patch: BTreeMap<String, Option<String>> = request
            .set
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .chain(request.delete.into_iter().map(|key| (key, None)))
            .collect();
        reply(self.api.patch_connector_config(&request.name, patch).await)
    }

    async fn delete_connector(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::Empty> {
        empty(self.api.delete_connector(&request.into_inner().name).await)
    }

    async fn get_connector_status(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::ConnectorStateInfo> {
        reply(self.api.connector_status(&request.into_inner().name).await)
    }

    async fn get_connector_tasks(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::TaskInfoList> {
        let tasks = self.api.connector_tasks(&request.into_inner().name).await.map_err(status_of)?;
        Ok(Response::new(pb::TaskInfoList { tasks: tasks.into_iter().map(Into::into).collect() }))
    }

    async fn get_task_status(&self, request: Request<pb::TaskRef>) -> GrpcResult<pb::TaskStateInfo> {
        let task = request.into_inner();
        reply(self.api.task_status(&task.connector, task.task).await)
    }

    async fn pause_connector(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::Empty> {
        empty(self.api.pause_connector(&request.into_inner().name).await)
    }

    async fn resume_connector(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::Empty> {
        empty(self.api.resume_connector(&request.into_inner().name).await)
    }

    async fn stop_connector(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::Empty> {
        empty(self.api.stop_connector(&request.into_inner().name).await)
    }

    async fn restart_connector(
        &self,
        request: Request<pb::RestartConnectorRequest>,
    ) -> GrpcResult<pb::RestartConnectorResponse> {
        let request = request.into_inner();
        let status = self
            .api
            .restart_connector(&request.name, request.include_tasks, request.only_failed)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::RestartConnectorResponse { status: status.map(Into::into) }))
    }

    async fn restart_task(&self, request: Request<pb::TaskRef>) -> GrpcResult<pb::Empty> {
        let task = request.into_inner();
        empty(self.api.restart_task(&task.connector, task.task).await)
    }

    async fn list_connector_plugins(
        &self,
        request: Request<pb::ListConnectorPluginsRequest>,
    ) -> GrpcResult<pb::ListConnectorPluginsResponse> {
        let plugins = self.api.connector_plugins(request.into_inner().include_all_types).await.map_err(status_of)?;
        Ok(Response::new(pb::ListConnectorPluginsResponse { plugins: plugins.into_iter().map(plugin).collect() }))
    }

    async fn validate_connector_config(
        &self,
        request: Request<pb::ValidateConnectorConfigRequest>,
    ) -> GrpcResult<pb::ConfigInfos> {
        let request = request.into_inner();
        let infos = self.api.validate_config(&request.plugin, to_config(request.config)).await.map_err(status_of)?;
        Ok(Response::new(config_infos(infos)))
    }

    async fn get_connector_plugin_config(&self, request: Request<pb::PluginRef>) -> GrpcResult<pb::PluginConfig> {
        let keys = self.api.plugin_config(&request.into_inner().plugin).await.map_err(status_of)?;
        Ok(Response::new(pb::PluginConfig { configs: keys.into_iter().map(key_definition).collect() }))
    }

    async fn get_connector_offsets(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::ConnectorOffsets> {
        let offsets = self.api.connector_offsets(&request.into_inner().name).await.map_err(status_of)?;
        Ok(Response::new(pb::ConnectorOffsets { offsets: offsets.offsets.into_iter().map(offset_to_proto).collect() }))
    }

    async fn alter_connector_offsets(
        &self,
        request: Request<pb::AlterConnectorOffsetsRequest>,
    ) -> GrpcResult<pb::OffsetsMessage> {
        let request = request.into_inner();
        let offsets = request.offsets.into_iter().map(offset_from_proto).collect::<Result<Vec<_>, _>>()?;
        let message =
            self.api.alter_connector_offsets(&request.name, ConnectorOffsets { offsets }).await.map_err(status_of)?;
        Ok(Response::new(pb::OffsetsMessage { message: message.message }))
    }

    async fn reset_connector_offsets(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::OffsetsMessage> {
        let message = self.api.reset_connector_offsets(&request.into_inner().name).await.map_err(status_of)?;
        Ok(Response::new(pb::OffsetsMessage { message: message.message }))
    }

    async fn get_connector_topics(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::ConnectorTopics> {
        let name = request.into_inner().name;
        let topics = self.api.connector_topics(&name).await.map_err(status_of)?;
        Ok(Response::new(pb::ConnectorTopics { name, topics }))
    }

    async fn reset_connector_topics(&self, request: Request<pb::ConnectorRef>) -> GrpcResult<pb::Empty> {
        empty(self.api.reset_connector_topics(&request.into_inner().name).await)
    }

    async fn list_loggers(&self, _request: Request<pb::ListLoggersRequest>) -> GrpcResult<pb::Loggers> {
        let loggers = self.api.loggers().await.map_err(status_of)?;
        Ok(Response::new(pb::Loggers { loggers: loggers.into_iter().map(|(k, v)| (k, v.into())).collect() }))
    }

    async fn get_logger(&self, request: Request<pb::LoggerRef>) -> GrpcResult<pb::LoggerLevel> {
        reply(self.api.logger(&request.into_inner().name).await)
    }

    async fn set_logger_level(
        &self,
        request: Request<pb::SetLoggerLevelRequest>,
    ) -> GrpcResult<pb::SetLoggerLevelResponse> {
        let request = request.into_inner();
        let scope = match pb::LoggerScope::try_from(request.scope) {
            Ok(pb::LoggerScope::Cluster) => LoggerScope::Cluster,
            _ => LoggerScope::Worker,
        };
        let changed = self.api.set_logger_level(&request.name, &request.level, scope).await.map_err(status_of)?;
        Ok(Response::new(pb::SetLoggerLevelResponse { changed }))
    }

    async fn get_health(&self, _request: Request<pb::GetHealthRequest>) -> GrpcResult<pb::Health> {
        let health = crate::api::health(self.api.as_ref()).await;
        Ok(Response::new(pb::Health { status: health.status.to_string(), message: health.message }))
    }
}

fn offset_to_proto(offset: ConnectorOffset) -> pb::ConnectorOffset {
    pb::ConnectorOffset {
        partition_json: serde_json::Value::Object(offset.partition).to_string(),
        offset_json: offset.offset.map(|o| serde_json::Value::Object(o).to_string()).unwrap_or_default(),
    }
}

/// JSON texts of an alter request; REST's body errors, in the same words.
fn offset_from_proto(offset: pb::ConnectorOffset) -> Result<ConnectorOffset, Status> {
    let object = |what: &str, text: &str| match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Status::invalid_argument(format!("{what} must be a JSON object, got {text}"))),
        Err(e) => Err(Status::invalid_argument(format!("{what} is not valid JSON: {e}"))),
    };
    let partition = object("partition_json", &offset.partition_json)?;
    let offset =
        if offset.offset_json.trim().is_empty() { None } else { Some(object("offset_json", &offset.offset_json)?) };
    Ok(ConnectorOffset { partition, offset })
}

impl From<LoggerLevel> for pb::LoggerLevel {
    fn from(level: LoggerLevel) -> Self {
        pb::LoggerLevel { level: level.level, last_modified: level.last_modified }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// API types -> proto messages
// ---------------------------------------------------------------------------------------------------------------

fn to_config(map: HashMap<String, String>) -> ConfigMap {
    map.into_iter().collect()
}

fn to_proto_map(config: ConfigMap) -> HashMap<String, String> {
    config.into_iter().collect()
}

impl From<ServerInfo> for pb::ServerInfo {
    fn from(info: ServerInfo) -> Self {
        pb::ServerInfo {
            version: info.version,
            commit: info.commit,
            kafka_cluster_id: info.kafka_cluster_id.unwrap_or_default(),
            sluice_version: info.sluice_version,
        }
    }
}

impl From<ConnectorTaskId> for pb::TaskRef {
    fn from(id: ConnectorTaskId) -> Self {
        pb::TaskRef { connector: id.connector, task: id.task }
    }
}

impl From<ConnectorInfo> for pb::ConnectorInfo {
    fn from(info: ConnectorInfo) -> Self {
        pb::ConnectorInfo {
            name: info.name,
            config: to_proto_map(info.config),
            tasks: info.tasks.into_iter().map(Into::into).collect(),
            r#type: info.connector_type,
        }
    }
}

impl From<TaskInfo> for pb::TaskInfo {
    fn from(task: TaskInfo) -> Self {
        pb::TaskInfo { id: Some(task.id.into()), config: to_proto_map(task.config) }
    }
}

impl From<TaskStateInfo> for pb::TaskStateInfo {
    fn from(task: TaskStateInfo) -> Self {
        pb::TaskStateInfo {
            id: task.id,
            state: task.state,
            worker_id: task.worker_id,
            trace: task.trace.unwrap_or_default(),
            version: task.version.unwrap_or_default(),
        }
    }
}

impl From<ConnectorStateInfo> for pb::ConnectorStateInfo {
    fn from(status: ConnectorStateInfo) -> Self {
        pb::ConnectorStateInfo {
            name: status.name,
            connector: Some(pb::ConnectorState {
                state: status.connector.state,
                worker_id: status.connector.worker_id,
                trace: status.connector.trace.unwrap_or_default(),
                version: status.connector.version.unwrap_or_default(),
            }),
            tasks: status.tasks.into_iter().map(Into::into).collect(),
            r#type: status.connector_type,
        }
    }
}

fn plugin(plugin: ApiPluginInfo) -> pb::PluginInfo {
    pb::PluginInfo { class: plugin.class, r#type: plugin.plugin_type, version: plugin.version }
}

fn config_infos(infos: ApiConfigInfos) -> pb::ConfigInfos {
    pb::ConfigInfos {
        name: infos.name,
        error_count: i32::try_from(infos.error_count).unwrap_or(i32::MAX),
        groups: infos.groups,
        configs: infos.configs.into_iter().map(config_info).collect(),
    }
}

fn key_definition(d: ConfigKeyInfo) -> pb::ConfigKeyDefinition {
    pb::ConfigKeyDefinition {
        name: d.name,
        r#type: d.config_type,
        required: d.required,
        default_value: d.default_value,
        importance: d.importance,
        documentation: d.documentation,
        group: d.group.unwrap_or_default(),
        order: d.order,
        width: d.width,
        display_name: d.display_name,
        dependents: d.dependents,
    }
}

fn config_info(info: ApiConfigInfo) -> pb::ConfigInfo {
    pb::ConfigInfo {
        definition: info.definition.map(key_definition),
        value: Some(pb::ConfigValueInfo {
            name: info.value.name,
            value: info.value.value,
            recommended_values: info.value.recommended_values,
            errors: info.value.errors,
            visible: info.value.visible,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::testing::FakeApi;

    fn grpc(names: &[&str]) -> (AdminGrpc, Arc<FakeApi>) {
        let fake = Arc::new(FakeApi::with(names));
        (AdminGrpc::new(fake.clone()), fake)
    }

    #[test]
    fn every_error_kind_maps_to_its_code_with_the_same_message() {
        let cases = [
            (ApiErrorKind::BadRequest, tonic::Code::InvalidArgument),
            (ApiErrorKind::PayloadTooLarge, tonic::Code::InvalidArgument),
            (ApiErrorKind::NotFound, tonic::Code::NotFound),
            (ApiErrorKind::AlreadyExists, tonic::Code::AlreadyExists),
            (ApiErrorKind::Conflict, tonic::Code::FailedPrecondition),
            (ApiErrorKind::Unauthorized, tonic::Code::Unauthenticated),
            (ApiErrorKind::Forbidden, tonic::Code::PermissionDenied),
            (ApiErrorKind::Unavailable, tonic::Code::Unavailable),
            (ApiErrorKind::Internal, tonic::Code::Internal),
        ];
        for (kind, code) in cases {
            let status = status_of(ApiError::new(kind, "Connector a not found"));
            assert_eq!((status.code(), status.message()), (code, "Connector a not found"));
        }
    }

    #[test]
    fn reflection_services_build() {
        let _ = reflection_service();
        let _ = reflection_service_v1alpha();
    }

    #[tokio::test]
    async fn create_get_and_list() {
        let (service, fake) = grpc(&["a"]);
        let request = pb::CreateConnectorRequest {
            name: " b ".to_string(),
            config: HashMap::from([("connector.class".to_string(), "FileStreamSource".to_string())]),
            initial_state: pb::InitialState::Paused as i32,
        };
        let info = service.create_connector(Request::new(request.clone())).await.expect("create").into_inner();
        assert_eq!(info.name, "b");
        assert_eq!(info.config.get("name").map(String::as_str), Some("b"));
        assert_eq!(info.r#type, "source");
        assert_eq!(info.tasks, vec![pb::TaskRef { connector: "b".to_string(), task: 0 }]);
        assert_eq!(fake.calls.lock().expect("lock").clone(), vec!["create b PAUSED"]);

        let again = service.create_connector(Request::new(request)).await.expect_err("exists");
        assert_eq!((again.code(), again.message()), (tonic::Code::AlreadyExists, "Connector b already exists"));

        let bad_state = pb::CreateConnectorRequest { name: "c".to_string(), initial_state: 42, ..Default::default() };
        let error = service.create_connector(Request::new(bad_state)).await.expect_err("bad state");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);

        let list = service
            .list_connectors(Request::new(pb::ListConnectorsRequest { expand_status: false, expand_info: false }))
            .await
            .expect("list")
            .into_inner();
        assert_eq!((list.names, list.expanded.len()), (vec!["a".to_string(), "b".to_string()], 0));

        let list = service
            .list_connectors(Request::new(pb::ListConnectorsRequest { expand_status: true, expand_info: false }))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(list.expanded.len(), 2);
        let status = list.expanded[0].status.clone().expect("status");
        assert_eq!(status.connector.map(|c| (c.state, c.trace)), Some(("RUNNING".to_string(), String::new())));
        assert_eq!(status.tasks[0].trace, "boom");
        assert!(list.expanded[0].info.is_none());
    }

    #[tokio::test]
    async fn config_patch_restart_and_not_found() {
        let (service, _) = grpc(&["a"]);
        let reference = || Request::new(pb::ConnectorRef { name: "a".to_string() });
        let patch = pb::PatchConnectorConfigRequest {
            name: "a".to_string(),
            set: HashMap::from([("topic".to_string(), "t".to_string())]),
            delete: vec!["connector.class".to_string()],
        };
        let info = service.patch_connector_config(Request::new(patch)).await.expect("patch").into_inner();
        assert_eq!(info.config.len(), 2);
        assert_eq!(info.config.get("topic").map(String::as_str), Some("t"));
        let config = service.get_connector_config(reference()).await.expect("config").into_inner();
        assert!(!config.config.contains_key("connector.class"));

        let put = pb::PutConnectorConfigRequest { name: "n".to_string(), config: HashMap::new() };
        let reply = service.put_connector_config(Request::new(put)).await.expect("put").into_inner();
        assert!(reply.created);

        let restart = |include_tasks| {
            Request::new(pb::RestartConnectorRequest { name: "a".to_string(), include_tasks, only_failed: false })
        };
        assert!(service.restart_connector(restart(false)).await.expect("restart").into_inner().status.is_none());
        let status = service.restart_connector(restart(true)).await.expect("restart").into_inner().status;
        assert_eq!(status.and_then(|s| s.connector).map(|c| c.state), Some("RESTARTING".to_string()));

        service.pause_connector(reference()).await.expect("pause");
        let task = Request::new(pb::TaskRef { connector: "a".to_string(), task: 9 });
        let error = service.restart_task(task).await.expect_err("no task 9");
        assert_eq!((error.code(), error.message()), (tonic::Code::NotFound, "Task a-9 not found"));
        service.delete_connector(reference()).await.expect("delete");
        let error = service.get_connector(reference()).await.expect_err("deleted");
        assert_eq!((error.code(), error.message()), (tonic::Code::NotFound, "Connector a not found"));
    }

    #[tokio::test]
    async fn plugins_and_validate() {
        let (service, fake) = grpc(&[]);
        let plugins = service
            .list_connector_plugins(Request::new(pb::ListConnectorPluginsRequest { include_all_types: true }))
            .await
            .expect("plugins")
            .into_inner();
        assert_eq!(plugins.plugins.len(), 2);
        assert_eq!(plugins.plugins[1].r#type, "converter");

        let request = pb::ValidateConnectorConfigRequest {
            plugin: "FileStreamSource".to_string(),
            config: HashMap::from([("topic".to_string(), "t".to_string())]),
        };
        let infos = service.validate_connector_config(Request::new(request)).await.expect("validate").into_inner();
        assert_eq!((infos.name.as_str(), infos.error_count), ("FileStreamSource", 0));
        assert!(fake.validated.lock().expect("lock").is_some());
    }

    #[tokio::test]
    async fn offsets_topics_plugins_loggers_and_health() {
        let (service, _) = grpc(&["a"]);
        let reference = || Request::new(pb::ConnectorRef { name: "a".to_string() });
        let alter = pb::AlterConnectorOffsetsRequest {
            name: "a".to_string(),
            offsets: vec![pb::ConnectorOffset {
                partition_json: r#"{"filename":"/tmp/in"}"#.to_string(),
                offset_json: r#"{"position":7}"#.to_string(),
            }],
        };
        let message = service.alter_connector_offsets(Request::new(alter)).await.expect("alter").into_inner();
        assert_eq!(message.message, "The offsets for this connector have been altered successfully");
        let offsets = service.get_connector_offsets(reference()).await.expect("get").into_inner();
        assert_eq!(offsets.offsets[0].offset_json, r#"{"position":7}"#);
        let bad = pb::AlterConnectorOffsetsRequest {
            name: "a".to_string(),
            offsets: vec![pb::ConnectorOffset { partition_json: "[1]".to_string(), offset_json: String::new() }],
        };
        let error = service.alter_connector_offsets(Request::new(bad)).await.expect_err("not an object");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        let empty = pb::AlterConnectorOffsetsRequest { name: "a".to_string(), offsets: vec![] };
        let error = service.alter_connector_offsets(Request::new(empty)).await.expect_err("empty");
        assert_eq!(error.message(), "Partitions / offsets need to be provided for an alter offsets request");
        service.reset_connector_offsets(reference()).await.expect("reset");

        let topics = service.get_connector_topics(reference()).await.expect("topics").into_inner();
        assert_eq!(topics.name, "a");
        service.reset_connector_topics(reference()).await.expect("reset topics");

        let plugin = Request::new(pb::PluginRef { plugin: "FileStreamSource".to_string() });
        let keys = service.get_connector_plugin_config(plugin).await.expect("plugin").into_inner();
        assert!(keys.configs.iter().any(|k| k.name == "file"));
        let unknown = Request::new(pb::PluginRef { plugin: "X".to_string() });
        let error = service.get_connector_plugin_config(unknown).await.expect_err("unknown");
        assert_eq!((error.code(), error.message()), (tonic::Code::NotFound, "Unknown plugin X."));

        let set = pb::SetLoggerLevelRequest {
            name: "sluice_control_plane".to_string(),
            level: "trace".to_string(),
            scope: pb::LoggerScope::Cluster as i32,
        };
        let changed = service.set_logger_level(Request::new(set)).await.expect("set").into_inner();
        assert_eq!(changed.changed[0], "sluice_control_plane");
        assert!(changed.changed.contains(&"sluice_control_plane::rest".to_string()), "modules below change too");
        let loggers = service.list_loggers(Request::new(pb::ListLoggersRequest {})).await.expect("list").into_inner();
        assert_eq!(loggers.loggers["sluice_control_plane"].level, "TRACE");
        assert!(loggers.loggers["root"].last_modified.is_none());
        let error = service
            .get_logger(Request::new(pb::LoggerRef { name: "nope".to_string() }))
            .await
            .expect_err("unknown logger");
        assert_eq!(error.code(), tonic::Code::NotFound);

        let health = service.get_health(Request::new(pb::GetHealthRequest {})).await.expect("health").into_inner();
        assert_eq!(health.status, "healthy");
    }

    #[test]
    fn config_infos_map_field_by_field() {
        use sluice_connectors::config::{ConfigKeyInfo, ConfigValueInfo};
        let infos = ApiConfigInfos {
            name: "FileStreamSource".to_string(),
            error_count: 1,
            groups: vec!["Common".to_string()],
            configs: vec![
                ApiConfigInfo {
                    definition: Some(ConfigKeyInfo {
                        name: "tasks.max".to_string(),
                        config_type: "INT".to_string(),
                        required: false,
                        default_value: Some("1".to_string()),
                        importance: "HIGH".to_string(),
                        documentation: "doc".to_string(),
                        group: None,
                        order: 3,
                        width: "SHORT".to_string(),
                        display_name: "Tasks max".to_string(),
                        dependents: vec![],
                    }),
                    value: ConfigValueInfo {
                        name: "tasks.max".to_string(),
                        value: Some("x".to_string()),
                        recommended_values: vec![],
                        errors: vec!["Invalid value x".to_string()],
                        visible: true,
                    },
                },
                ApiConfigInfo {
                    definition: None,
                    value: ConfigValueInfo {
                        name: "extra".to_string(),
                        value: None,
                        recommended_values: vec![],
                        errors: vec![],
                        visible: true,
                    },
                },
            ],
        };
        let proto = config_infos(infos);
        assert_eq!(proto.error_count, 1);
        let definition = proto.configs[0].definition.clone().expect("definition");
        assert_eq!((definition.r#type.as_str(), definition.order, definition.group.as_str()), ("INT", 3, ""));
        assert_eq!(definition.default_value.as_deref(), Some("1"));
        assert_eq!(proto.configs[0].value.as_ref().map(|v| v.errors.len()), Some(1));
        assert!(proto.configs[1].definition.is_none());
        assert_eq!(proto.configs[1].value.as_ref().and_then(|v| v.value.clone()), None);
    }
}
