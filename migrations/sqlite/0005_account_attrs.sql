-- Operator attributes of a SIP account, shown by the operator surfaces (/api/v1, the
-- telecom.center JSON:API and the telecomx /sip listing), plus the public id those surfaces use
-- and the SIP password sealed with the server's AEAD key (NULL for accounts created before it
-- was kept; such passwords are not recoverable until the next change).
ALTER TABLE accounts ADD COLUMN public_id TEXT;
ALTER TABLE accounts ADD COLUMN password_sealed TEXT;
ALTER TABLE accounts ADD COLUMN caller_id_name TEXT;
ALTER TABLE accounts ADD COLUMN internal_caller_id INTEGER;
ALTER TABLE accounts ADD COLUMN external_caller_id INTEGER;
ALTER TABLE accounts ADD COLUMN allow_external_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN use_allowed_ips INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN incoming_internal INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN incoming_external INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN outgoing_internal INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN outgoing_external INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN on_demand INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN name TEXT;
ALTER TABLE accounts ADD COLUMN rate_plan TEXT;
ALTER TABLE accounts ADD COLUMN rate_plan_name TEXT;
ALTER TABLE accounts ADD COLUMN new_rate_plan TEXT;
ALTER TABLE accounts ADD COLUMN connection TEXT;
ALTER TABLE accounts ADD COLUMN ip_address TEXT;
ALTER TABLE accounts ADD COLUMN port INTEGER;
ALTER TABLE accounts ADD COLUMN countries TEXT;
ALTER TABLE accounts ADD COLUMN failover TEXT;
ALTER TABLE accounts ADD COLUMN always_failover INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN usage_block INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pbx INTEGER;
ALTER TABLE accounts ADD COLUMN high_rate INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN international INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN address TEXT;
ALTER TABLE accounts ADD COLUMN parent_sip_account TEXT;
ALTER TABLE accounts ADD COLUMN notes TEXT;
ALTER TABLE accounts ADD COLUMN custom TEXT;
ALTER TABLE accounts ADD COLUMN sip_server TEXT;
ALTER TABLE accounts ADD COLUMN clip_sa INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN strip_dk_country_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN prefix_mobile_originated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN invoiced_until INTEGER;
ALTER TABLE accounts ADD COLUMN default_number TEXT;
ALTER TABLE accounts ADD COLUMN always_default_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN always_secret_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN billing_customer INTEGER;

-- A random (version 4) UUID for every existing account.
UPDATE accounts SET public_id =
    lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' ||
    substr(lower(hex(randomblob(2))), 2) || '-' ||
    substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
    lower(hex(randomblob(6)));
CREATE UNIQUE INDEX accounts_public_id ON accounts(public_id);
-- Listings sort by these within a customer.
CREATE INDEX accounts_customer_username ON accounts(customer_id, username);
