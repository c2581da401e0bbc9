//! The proxy's error answers, in each API's own format (EC2's and S3's XML,
//! ELBv2's `ErrorResponse`), so the SDK classifies them as it would AWS's.

use super::http::Response;
use super::{Fault, Service};

pub(crate) fn fault_response(fault: &Fault, service: Service, request_id: &str) -> Response {
    let (status, code, message, receiver) = match (fault, service) {
        (Fault::Throttle, Service::Elbv2) => (400, "Throttling", "Rate exceeded", false),
        (Fault::Throttle, _) => (
            503,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            false,
        ),
        (Fault::Status(503), Service::Elbv2) => {
            (503, "ServiceUnavailable", "Service is unavailable.", true)
        }
        (Fault::Status(503), _) => (503, "Unavailable", "The server is overloaded.", true),
        (Fault::Status(s), Service::Elbv2) => (*s, "InternalFailure", "Internal failure.", true),
        (Fault::Status(s), _) => (*s, "InternalError", "An internal error has occurred.", true),
        (Fault::Error(code), _) => (400, code.as_str(), "Injected by the test proxy.", false),
        (Fault::Deny, _) => (
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
            false,
        ),
        (Fault::Drop, _) => unreachable!("a dropped request has no response"),
    };
    let body = match service {
        Service::Elbv2 => format!(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
             <Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{request_id}</RequestId></ErrorResponse>",
            if receiver { "Receiver" } else { "Sender" }
        ),
        Service::S3 => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        ),
        Service::Ec2 | Service::Other => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>{code}</Code><Message>{message}</Message></Error></Errors>\
             <RequestID>{request_id}</RequestID></Response>"
        ),
    };
    Response {
        status,
        reason: reason(status).to_string(),
        headers: vec![
            ("content-type".into(), "text/xml".into()),
            ("x-amzn-requestid".into(), request_id.to_string()),
        ],
        body: body.into_bytes(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
