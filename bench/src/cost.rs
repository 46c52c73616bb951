//! What a request costs on AWS: Lambda (arm64) duration and requests, plus the route's
//! AWS calls. Prices of us-east-1 as AWS's pricing pages give them (read 2026-11-26;
//! the rates below could not be re-read from AWS's own pages offline, see
//! docs/PERFORMANCE.md): change them here when they change.

use crate::proxy::Tally;

/// Lambda arm64, first tier: USD per GB-second.
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
/// Lambda: USD per request.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// DynamoDB on-demand: USD per write request unit and per read request unit.
pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
/// Secrets Manager: USD per API call ($0.05 per 10,000).
pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 10_000.0;
/// EventBridge custom events: USD per event (of up to 64 KB).
pub const EVENTBRIDGE_EVENT: f64 = 1.00 / 1e6;

/// Lambda bills duration in 1 ms steps, rounded up; a custom runtime's INIT phase is
/// billed too (so a cold start's billed duration is its whole first answer).
pub fn billed_ms(ms: f64) -> f64 {
    ms.ceil().max(1.0)
}

/// Lambda's price of one invocation billed `billed_ms` at `mb`.
pub fn lambda(billed_ms: f64, mb: u32) -> f64 {
    billed_ms / 1000.0 * f64::from(mb) / 1024.0 * LAMBDA_ARM_GB_SECOND + LAMBDA_REQUEST
}

/// The price of the AWS calls in `tally`, divided over `calls` requests.
pub fn aws_calls(tally: Tally, calls: usize) -> f64 {
    let total = tally.read_units as f64 * DYNAMODB_READ_UNIT
        + tally.write_units as f64 * DYNAMODB_WRITE_UNIT
        + tally.secrets_calls as f64 * SECRETS_MANAGER_CALL
        + tally.events as f64 * EVENTBRIDGE_EVENT;
    total / calls.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_one_millisecond_calls_at_128_mb_cost_the_requests_and_a_little_duration() {
        let per_million = lambda(billed_ms(0.3), 128) * 1e6;
        // 1 ms × 0.125 GB × 1e6 = 125 GB-s.
        assert!((per_million - (0.20 + 125.0 * LAMBDA_ARM_GB_SECOND)).abs() < 1e-9);
    }

    #[test]
    fn calls_are_priced_by_what_aws_bills_them_as() {
        let tally = Tally {
            calls: 4,
            read_units: 2,
            write_units: 4,
            secrets_calls: 1,
            events: 1,
        };
        let expected = 2.0 * 0.125e-6 + 4.0 * 0.625e-6 + 5e-6 + 1e-6;
        assert!((aws_calls(tally, 1) - expected).abs() < 1e-15);
        assert!((aws_calls(tally, 2) - expected / 2.0).abs() < 1e-15);
    }
}
