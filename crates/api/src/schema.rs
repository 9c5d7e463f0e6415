//! The JSON bodies of the API as types. Success bodies are built from these
//! types by the handlers, and the OpenAPI document is derived from the same
//! types, so the two cannot drift; error bodies ([`crate::JsonError`]) are
//! described by the `*Error` schemas below and checked by the tests. The
//! responses every protected route shares ([`Unauthorized`],
//! [`MethodNotAllowed`]) are here too, for the routes of the local server.

use gender_core::Gender;
use gender_core::ingest::Rejection;
use serde::Serialize;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{PartialSchema, ToResponse, ToSchema};

/// The `clientid` rule (SPEC 2) as an ECMA-262 pattern.
pub const CLIENTID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

/// `M` or `F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum GenderLetter {
    M,
    F,
}

impl From<Gender> for GenderLetter {
    fn from(gender: Gender) -> GenderLetter {
        match gender {
            Gender::M => GenderLetter::M,
            Gender::F => GenderLetter::F,
        }
    }
}

/// The three votes the `gender` is the majority of (SPEC 8).
#[derive(Debug, Serialize, ToSchema)]
pub struct Signals {
    /// Page gender of the hit with the latest event time.
    pub last: GenderLetter,
    /// `M` if more lifetime hits were `M`, `F` if more were `F`, else `last`.
    pub lifetime: GenderLetter,
    /// The same comparison over the 7-day window of the last daily run; `null`
    /// when the visitor had no hits in it (then `lifetime` votes twice).
    #[schema(required = true)]
    pub last_7_days: Option<GenderLetter>,
}

/// Lifetime hit counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitCounts {
    #[serde(rename = "M")]
    pub m: u64,
    #[serde(rename = "F")]
    pub f: u64,
}

/// A visitor's gender estimate: `200` of `GET /gender/{clientid}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "clientid": "visitor-42",
    "gender": "M",
    "signals": {"last": "M", "lifetime": "F", "last_7_days": "M"},
    "hits": {"M": 12, "F": 3},
    "last_seen": "2024-05-01T12:34:56.789Z",
    "updated_at": "2024-05-01T12:34:58.001Z"
}))]
pub struct GenderProfile {
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub clientid: String,
    /// Majority vote of the three signals.
    pub gender: GenderLetter,
    pub signals: Signals,
    pub hits: HitCounts,
    /// Event time of the visitor's latest hit (UTC, millisecond precision).
    #[schema(format = DateTime)]
    pub last_seen: String,
    /// When the profile was last updated (UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// One hit of the request that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RejectedHit {
    /// 0-based position of the hit in the array (or NDJSON line; a single
    /// object is index 0).
    pub index: usize,
    /// Why it was rejected.
    pub error: String,
}

impl From<Rejection> for RejectedHit {
    fn from(rejection: Rejection) -> RejectedHit {
        let Rejection { index, error } = rejection;
        RejectedHit { index, error }
    }
}

/// `202` of `POST /hits`: at least one hit was stored durably.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"accepted": 2, "rejected": [{"index": 1, "error": "pageGender must be M or F"}]}))]
pub struct IngestResult {
    /// Hits durably stored (in Kinesis on AWS, fsync'ed in the local log).
    #[schema(minimum = 1)]
    pub accepted: usize,
    /// The hits of the request that were not stored, in request order.
    pub rejected: Vec<RejectedHit>,
}

/// `{"status": "ok"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthOk,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthOk {
    Ok,
}

/// `503` of `GET /health`: a stage does not work.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "error": "state store: did not answer"}))]
pub struct HealthUnavailable {
    /// Absent only when the request deadline of the deployment passed first.
    pub status: Option<HealthDown>,
    /// The failing stage and why (no paths).
    pub error: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthDown {
    Unavailable,
}

// Error bodies. They are written by `JsonError` (`{"error": ..., ...extra}`);
// these types only describe them, so they are never constructed.

/// Every error of every route: a JSON object with a message in `error`,
/// sometimes with more fields (see each response).
#[derive(ToSchema)]
#[schema(example = json!({"error": "missing or invalid API key (header x-api-key)"}))]
pub struct Error {
    /// Human-readable message.
    pub error: String,
}

/// Missing or wrong `x-api-key`; nothing was done.
#[derive(ToResponse)]
#[response(example = json!({"error": "missing or invalid API key (header x-api-key)"}))]
#[expect(dead_code, reason = "describes the bodies JsonError writes")]
pub struct Unauthorized(Error);

/// A key of the wrong scope (SPEC 18), or a read or admin key sent in a
/// URL; nothing was done. `required_scope` names the scope the route needs.
#[derive(ToResponse)]
#[response(example = json!({"error": "this ingest key may not call this route; it needs a read key", "scope": "ingest", "required_scope": "read"}))]
#[expect(dead_code, reason = "describes the bodies JsonError writes")]
pub struct Forbidden(Error);

/// The path exists, the method does not: `Allow` lists the methods it has.
#[derive(ToResponse)]
#[response(
    headers(("Allow" = String, description = "The methods of this path, e.g. `GET,HEAD`.")),
    example = json!({"error": "method not allowed; allowed: GET,HEAD"})
)]
#[expect(dead_code, reason = "describes the bodies JsonError writes")]
pub struct MethodNotAllowed(Error);

/// An error of `POST /hits`.
#[derive(ToSchema)]
#[schema(example = json!({"error": "no valid hits in the request", "accepted": 0, "rejected": [{"index": 0, "error": "pageGender is required"}]}))]
pub struct IngestError {
    pub error: String,
    /// `0` when hits were parsed but none was stored.
    #[schema(maximum = 0, minimum = 0)]
    pub accepted: Option<u8>,
    /// Why each hit was not stored, when hits were parsed.
    pub rejected: Option<Vec<RejectedHit>>,
    /// `true` on a `503` after which the same request may be sent again.
    pub retryable: Option<bool>,
    /// The body limit, on a `413` for the body size.
    pub limit_bytes: Option<u64>,
}

/// An error about one visitor id: the id as received (decoded; bytes that are
/// not UTF-8 become U+FFFD).
#[derive(ToSchema)]
#[schema(example = json!({"clientid": "visitor-404", "error": "unknown clientid"}))]
pub struct ClientIdError {
    pub error: String,
    pub clientid: String,
}

/// A page hit (SPEC 2). Unknown fields are ignored and not stored.
///
/// A hit that matches this schema can still be rejected: its `timestamp` must
/// lie between 2000-01-01T00:00:00Z and 24 h after the request's arrival.
pub struct Hit;

impl PartialSchema for Hit {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let timestamp_text = string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 with a date, a time and an offset (`Z` or `±hh:mm`); \
                 sub-millisecond digits are truncated",
            ))
            .examples(["2024-05-01T12:34:56.789Z"]);
        let timestamp_ms = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(
                "epoch milliseconds, written as an integer (no fraction or exponent)",
            ))
            .examples([1_714_566_896_789_i64]);
        let timestamp = OneOfBuilder::new()
            .item(timestamp_text)
            .item(timestamp_ms)
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "Event time, stored as UTC. Absent or `null`: the arrival time. Rejected \
                 before 2000-01-01T00:00:00Z or more than 24 h after arrival.",
            ));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One page hit. Unknown fields are ignored and not stored. The `timestamp` \
                 bounds depend on the arrival time, so a hit of this shape can still be \
                 rejected for its time.",
            ))
            .property(
                "clientid",
                string()
                    .pattern(Some(CLIENTID_PATTERN))
                    .min_length(Some(1))
                    .max_length(Some(64))
                    .description(Some("Visitor id: 1..=64 characters of `[A-Za-z0-9._:-]`."))
                    .examples(["visitor-42"]),
            )
            .required("clientid")
            .property(
                "pageGender",
                string()
                    .enum_values(Some(["M", "F", "m", "f"]))
                    .description(Some(
                        "Gender the page is aimed at; case-insensitive, stored upper-case.",
                    )),
            )
            .required("pageGender")
            .property("timestamp", timestamp)
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([serde_json::json!({
                "clientid": "visitor-42",
                "pageGender": "F",
                "timestamp": "2024-05-01T12:34:56Z"
            })])
            .into()
    }
}

impl ToSchema for Hit {}

/// The JSON body of `POST /hits`: one hit object, or an array of 1..=500
/// JSON values of which at least one is a hit. Every valid hit is stored;
/// each other element is listed in `rejected` with its reason.
pub struct HitBatch;

impl PartialSchema for HitBatch {
    fn schema() -> RefOr<Schema> {
        let mut array = ArrayBuilder::new()
            .schema_type(SchemaType::new(Type::Array))
            .items(
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .description(Some(
                        "A hit; any other value is rejected individually (listed in \
                         `rejected`)",
                    ))
                    .build(),
            )
            .min_items(Some(1))
            .max_items(Some(gender_core::ingest::MAX_HITS_PER_REQUEST))
            .description(Some(
                "1..=500 elements, at least one of them a hit. More than 500 elements get 413; \
                 an empty array, or one without any valid hit, gets 400.",
            ))
            .build();
        // JSON Schema's `contains` (OpenAPI 3.1): utoipa 5 has no builder for
        // it, and its extensions serialize flattened into the schema object.
        array
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                "contains".into(),
                serde_json::json!({ "$ref": "#/components/schemas/Hit" }),
            );
        OneOfBuilder::new()
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Hit")))
            .item(array)
            .description(Some("One hit object, or a JSON array of up to 500 hits."))
            .into()
    }
}

impl ToSchema for HitBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("Hit".into(), Hit::schema()));
    }
}

/// The NDJSON body of `POST /hits` (text, so only described here).
pub struct NdjsonHits;

impl PartialSchema for NdjsonHits {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1..=500 lines, each one JSON hit object (schema `Hit`); lines end in `\\n` \
                 or `\\r\\n`. Every valid line is stored, each other one is listed in \
                 `rejected` by its 0-based line index.",
            ))
            .into()
    }
}

impl ToSchema for NdjsonHits {}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErasureState {
    /// Recorded; the visitor's data is still being removed.
    Pending,
    /// The profile and the visitor's rows in curated hits and daily rollups are gone.
    Complete,
}

impl From<gender_core::ErasureStatus> for ErasureState {
    fn from(status: gender_core::ErasureStatus) -> ErasureState {
        match status {
            gender_core::ErasureStatus::Pending => ErasureState::Pending,
            gender_core::ErasureStatus::Complete => ErasureState::Complete,
        }
    }
}

/// An erasure (SPEC 17): `202` of `DELETE /visitors/{clientid}` and `200` of
/// `GET /erasures/{id}`. It never names the visitor.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "erasure_id": "3f2a9c0d4e5b6a7182930a1b2c3d4e5f",
    "status": "pending",
    "requested_at": "2026-11-26T08:00:00.000Z",
    "completed_at": null,
    "status_url": "/erasures/3f2a9c0d4e5b6a7182930a1b2c3d4e5f"
}))]
pub struct Erasure {
    /// 32 lowercase hex characters.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub erasure_id: String,
    pub status: ErasureState,
    /// RFC 3339, UTC, milliseconds.
    pub requested_at: String,
    /// When `status` became `complete`, else `null`.
    pub completed_at: Option<String>,
    /// `GET` it to follow the erasure.
    pub status_url: String,
}

/// An error about an erasure id.
#[derive(ToSchema)]
#[schema(example = json!({"erasure_id": "0000", "error": "erasure id must be 32 characters of [0-9a-f]"}))]
pub struct ErasureIdError {
    pub error: String,
    pub erasure_id: String,
}
