-- Client certificates issued by the built-in CA. The serial (lowercase hex, no leading
-- zeros) maps a presented certificate to its account; revoked_at set = revoked.
CREATE TABLE client_certs (
    id BIGSERIAL PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    revoked_at BIGINT,
    cert_pem TEXT NOT NULL,
    -- The private key (PKCS#8 PEM) sealed with the server's secret key, to re-serve get_crt.
    key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX client_certs_account ON client_certs(account_id, created_at);
