from __future__ import annotations

from pydantic import Field, model_validator

from ronda.core.schemas import InputModel, OutputModel, Password


class LoginRequest(InputModel):
    username: str | None = Field(None, max_length=254, description="Username or email")
    email: str | None = Field(None, max_length=254, description="Email (alternative to username)")
    password: Password = Field(..., min_length=1, max_length=256)
    totp_code: str | None = Field(None, max_length=32, description="TOTP code or a recovery code")

    @model_validator(mode="after")
    def _identity(self) -> LoginRequest:
        if not (self.username or self.email):
            raise ValueError("username or email is required")
        return self

    @property
    def identity(self) -> str:
        return (self.username or self.email or "").strip()


class TokenResponse(OutputModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: str
    tenant_id: str
    role: str
    mfa_setup_required: bool = False


class RefreshRequest(InputModel):
    # Optional so `{}` alongside a Bearer token (what many HTTP clients send on a bodiless POST)
    # refreshes by the Bearer, as seed 000 documents; with neither, the caller gets a 401.
    refresh_token: str | None = Field(None, min_length=10, max_length=4096)


class TotpCode(InputModel):
    totp_code: str = Field(..., min_length=6, max_length=32)


class TwoFactorSetup(OutputModel):
    secret: str
    otpauth_uri: str


class TwoFactorEnabled(OutputModel):
    mfa_enabled: bool
    recovery_codes: list[str]
    tokens: TokenResponse | None = Field(
        None, description="New full-access tokens when the login was limited to MFA enrolment"
    )


class ChangePassword(InputModel):
    current_password: Password = Field(..., min_length=1, max_length=256)
    new_password: Password = Field(..., max_length=256)


class LogoutResponse(OutputModel):
    detail: str = "Logged out"
    session_id: str
