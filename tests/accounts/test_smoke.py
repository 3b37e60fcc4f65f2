def test_token_then_me_returns_role(api_client, physician, password):
    response = api_client.post("/api/v1/auth/token/", {"email": physician.email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    me = api_client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 200
    assert me.json()["role"] == "physician"


def test_unauthenticated_me_is_401(api_client, db):
    assert api_client.get("/api/v1/me/").status_code == 401
