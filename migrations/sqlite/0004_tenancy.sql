-- Tenancy: resellers (a tree), customers owning SIP accounts, operator users and API tokens.
CREATE TABLE resellers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES resellers(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    reseller_id INTEGER REFERENCES resellers(id),
    sip_account_limit INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX customers_reseller ON customers(reseller_id);

-- Accounts made before tenancy (and by the CLI) belong to this customer.
INSERT INTO customers (id, name, reseller_id, sip_account_limit, created_at, updated_at)
VALUES (1, 'default', NULL, NULL, 0, 0);

-- SQLite cannot add a column with both REFERENCES and a non-NULL default; the service checks it.
ALTER TABLE accounts ADD COLUMN customer_id INTEGER NOT NULL DEFAULT 1;
CREATE INDEX accounts_customer ON accounts(customer_id);

CREATE TABLE operators (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('ADMIN', 'RESELLER', 'OWNER', 'MANAGER', 'VIEWER')),
    customer_id INTEGER REFERENCES customers(id),
    reseller_id INTEGER REFERENCES resellers(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at INTEGER,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX api_tokens_operator ON api_tokens(operator_id);
