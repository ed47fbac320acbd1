//! The OpenAPI document (generated from the handlers by utoipa) and the
//! browsable docs page (Swagger UI, its files vendored at build time).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::SharedState;

/// The document's frame: info, tags and security schemes; the paths come
/// from the routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "HealthLedger", description = "Health records whose truth lives on an EVM chain: profiles, records, consent and audit over HTTP."),
    modifiers(&Security),
    security(("session" = []), ("operator" = [])),
    tags(
        (name = "auth", description = "Sign-in with a wallet (EIP-4361)"),
        (name = "register", description = "Registration on chain"),
        (name = "profiles", description = "Public profiles, cache first"),
        (name = "records", description = "Encrypted records and their reads"),
        (name = "access", description = "The patient's consent"),
        (name = "listings", description = "Listings and search"),
        (name = "notifications", description = "The user's notifications"),
        (name = "sync", description = "Chain-to-cache reconciliation"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub(crate) struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "session",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        c.add_security_scheme(
            "operator",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Operator-Token"))),
        );
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    super::routes::api().split_for_parts().1
}

/// `GET /api/openapi.json` and the docs page at `/api/docs`.
pub(crate) fn docs() -> axum::Router<SharedState> {
    SwaggerUi::new("/api/docs")
        .url("/api/openapi.json", openapi())
        .into()
}
