//! The resource model of rkube, with no I/O: which resources exist (names,
//! scopes, subresources), how their objects are decoded, defaulted and
//! validated, how label/field selectors and quantities are parsed, how
//! strategic merge patches apply, how objects print as `kubectl get` tables,
//! and the OpenAPI documents that describe them.

pub mod decode;
pub mod defaults;
pub mod field;
pub mod names;
pub mod openapi;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod scheduling;
pub mod selector;
pub mod smp;
pub mod table;
pub mod typed;
pub mod validation;
pub mod x509;

pub use field::{FieldError, FieldErrorType};
pub use resources::ResourceInfo;
