//! `POST /api/v1/users` and `POST /api/v1/sessions`: sign-up and sign-in through auth.

use super::*;

/// `POST /api/v1/users` → 201 `{id, email}`; 422 for an address the email rule refuses
/// (before any call); 409 when the email is taken; 429 with `Retry-After` when the client's
/// address signed up too often; 503 with `Retry-After` when auth is busy.
pub async fn create_user(State(gw): State<Gateway>, from: ClientAddress, body: Body) -> Answer {
    let r: CreateUserRequest = json_body(body, gw.deadlines().body).await?;
    r.validate()?;
    let request = SignUpRequest {
        email: r.email,
        password: r.password,
        name: r.name.unwrap_or_default(),
    };
    let auth = CREATE_USER.service();
    let channel = gw.client(auth)?;
    let answer = gw
        .caller()
        .call(auth, channel, CREATE_USER.retry, |c| {
            let request = from.request(request.clone());
            async move { AuthClient::new(c).sign_up(request).await }
        })
        .await;
    let user = answer.map_err(|s| match s.code() {
        Code::AlreadyExists => ApiError::new(ErrorKind::Conflict, s.message()).into(),
        _ => upstream::refusal(auth, &s),
    })?;
    let body = UserCreated {
        id: user.user_id,
        email: user.email,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/v1/sessions` → 200 `{token, expiresAt}`; 401 when wrong (an address no account
/// can have included); 429 with `Retry-After` when the account or the client's address is
/// throttled after failures (whatever the password); 503 with `Retry-After` when auth is busy.
pub async fn create_session(State(gw): State<Gateway>, from: ClientAddress, body: Body) -> Answer {
    let r: CreateSessionRequest = json_body(body, gw.deadlines().body).await?;
    let request = SignInRequest {
        email: r.email,
        password: r.password,
    };
    let auth = CREATE_SESSION.service();
    let channel = gw.client(auth)?;
    let answer = gw
        .caller()
        .call(auth, channel, CREATE_SESSION.retry, |c| {
            let request = from.request(request.clone());
            async move { AuthClient::new(c).sign_in(request).await }
        })
        .await;
    let session = answer.map_err(|s| match s.code() {
        Code::Unauthenticated => ApiError::new(ErrorKind::Unauthenticated, s.message()).into(),
        _ => upstream::refusal(auth, &s),
    })?;
    let body = Session {
        token: session.token,
        expires_at: rfc3339(session.expires_at),
    };
    Ok(Json(body).into_response())
}
