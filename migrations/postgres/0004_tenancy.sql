-- Tenancy: resellers (a tree), customers owning SIP accounts, operator users and API tokens.
CREATE TABLE resellers (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parent_id BIGINT REFERENCES resellers(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE customers (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    reseller_id BIGINT REFERENCES resellers(id),
    sip_account_limit BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX customers_reseller ON customers(reseller_id);

-- Accounts made before tenancy (and by the CLI) belong to this customer.
INSERT INTO customers (id, name, reseller_id, sip_account_limit, created_at, updated_at)
VALUES (1, 'default', NULL, NULL, 0, 0);
SELECT setval('customers_id_seq', 1);

ALTER TABLE accounts ADD COLUMN customer_id BIGINT NOT NULL DEFAULT 1 REFERENCES customers(id);
CREATE INDEX accounts_customer ON accounts(customer_id);

CREATE TABLE operators (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('ADMIN', 'RESELLER', 'OWNER', 'MANAGER', 'VIEWER')),
    customer_id BIGINT REFERENCES customers(id),
    reseller_id BIGINT REFERENCES resellers(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_operator ON api_tokens(operator_id);
