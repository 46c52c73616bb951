//! Records, per function, every AWS action its code performs (an SDK interceptor on the
//! real clients), for the least-privilege proof against template.yaml. Besides actions
//! (`service:Action`) it records the facts of a call that IAM conditions of the grants
//! test, as `condition-key=value` (`secretsmanager:ForceDeleteWithoutRecovery=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretInput;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

tokio::task_local! {
    /// The function whose code is running (set around each request and sweep).
    pub static FUNCTION: &'static str;
}

/// The harness's own use of the service's code (issuing and revoking keys, reading rows
/// back): signed with the admin's keys (see `iam`), and not any function's action.
pub const OPERATOR: &str = "operator";

/// Runs `f` as the operator.
pub async fn as_operator<F: Future>(f: F) -> F::Output {
    FUNCTION.scope(OPERATOR, f).await
}

/// Runs `f` as `function` (a binary name of functions/).
pub async fn as_function<F: Future>(function: &'static str, f: F) -> F::Output {
    FUNCTION.scope(function, f).await
}

pub type Calls = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

#[derive(Debug, Clone)]
pub struct Recorder {
    /// The IAM service prefix of the client this is attached to.
    prefix: &'static str,
    calls: Calls,
}

impl Recorder {
    pub fn new(prefix: &'static str, calls: Calls) -> Self {
        Recorder { prefix, calls }
    }

    fn record(&self, actions: impl IntoIterator<Item = String>) {
        if let Some(function) = FUNCTION.try_with(|f| *f).ok().filter(|f| *f != OPERATOR) {
            self.calls
                .lock()
                .unwrap()
                .entry(function.to_string())
                .or_default()
                .extend(actions);
        }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-action-recorder"
    }

    /// What the operation's input says: a transaction needs the action of each item it
    /// holds; a secret created with tags also needs `TagResource`; a `DeleteSecret` without
    /// recovery window needs a grant that does not exclude `ForceDeleteWithoutRecovery`;
    /// `PutEvents` needs a grant allowing each entry's `events:source`.
    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let p = self.prefix;
        if let Some(input) = ctx.input().downcast_ref::<TransactWriteItemsInput>() {
            self.record(
                input
                    .transact_items()
                    .iter()
                    .flat_map(|item| {
                        [
                            item.put().map(|_| "PutItem"),
                            item.delete().map(|_| "DeleteItem"),
                            item.update().map(|_| "UpdateItem"),
                            item.condition_check().map(|_| "ConditionCheckItem"),
                        ]
                    })
                    .flatten()
                    .map(|a| format!("{p}:{a}")),
            );
        }
        if ctx
            .input()
            .downcast_ref::<CreateSecretInput>()
            .is_some_and(|i| !i.tags().is_empty())
        {
            self.record([format!("{p}:TagResource")]);
        }
        if ctx
            .input()
            .downcast_ref::<DeleteSecretInput>()
            .is_some_and(|i| i.force_delete_without_recovery() == Some(true))
        {
            self.record([format!("{p}:ForceDeleteWithoutRecovery=true")]);
        }
        if let Some(input) = ctx.input().downcast_ref::<PutEventsInput>() {
            self.record(
                input
                    .entries()
                    .iter()
                    .map(|e| format!("{p}:source={}", e.source().unwrap_or_default())),
            );
        }
        Ok(())
    }

    /// The operation itself, from the JSON protocol's `X-Amz-Target` header
    /// (`DynamoDB_20120810.GetItem`, `secretsmanager.CreateSecret`, `AWSEvents.PutEvents`).
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = ctx.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default();
        if operation != "TransactWriteItems" && !operation.is_empty() {
            self.record([format!("{}:{operation}", self.prefix)]);
        }
        Ok(())
    }
}
