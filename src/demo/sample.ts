/**
 * A realistic miniature of the first user's database: an accountancy practice platform with
 * users, clients, KYC checks, onboarding sessions and an activity log, plus what a plain
 * pg_dump tends to lose or mangle — a role with grants, a sequence, a large object, foreign keys,
 * partial and expression indexes. Used by `lifeboat demo` and by the database tests.
 */
export const SAMPLE_ROLE = "app_readonly";

export function sampleSchemaSql(): string {
  return `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${SAMPLE_ROLE}') THEN
    CREATE ROLE ${SAMPLE_ROLE} NOLOGIN;
  END IF;
END $$;

CREATE TYPE kyc_status AS ENUM ('pending', 'verified', 'rejected', 'expired');

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  full_name text NOT NULL,
  role text NOT NULL CHECK (role IN ('partner', 'accountant', 'assistant', 'admin')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
  id bigserial PRIMARY KEY,
  company_name text NOT NULL,
  company_number char(8),
  vat_number text,
  account_manager_id bigint REFERENCES users(id) ON DELETE SET NULL,
  risk_rating smallint NOT NULL DEFAULT 1 CHECK (risk_rating BETWEEN 1 AND 5),
  metadata jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_manager_idx ON clients (account_manager_id);
CREATE INDEX clients_name_lower_idx ON clients (lower(company_name));

CREATE TABLE kyc_verifications (
  id bigserial PRIMARY KEY,
  client_id bigint NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  status kyc_status NOT NULL DEFAULT 'pending',
  document_key text NOT NULL,
  checked_by bigint REFERENCES users(id),
  expires_on date,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kyc_pending_idx ON kyc_verifications (client_id) WHERE status = 'pending';

CREATE TABLE onboarding_sessions (
  id uuid PRIMARY KEY,
  client_id bigint NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  step text NOT NULL,
  answers jsonb NOT NULL DEFAULT '{}',
  completed boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE invoice_number_seq START 100000;

CREATE TABLE activity_logs (
  id bigserial PRIMARY KEY,
  user_id bigint REFERENCES users(id),
  client_id bigint REFERENCES clients(id),
  action text NOT NULL,
  detail jsonb,
  ip inet,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_logs_created_idx ON activity_logs (created_at);

CREATE TABLE engagement_letters (
  id bigserial PRIMARY KEY,
  client_id bigint NOT NULL REFERENCES clients(id),
  letter oid NOT NULL
);

GRANT SELECT ON users, clients, kyc_verifications, onboarding_sessions, activity_logs TO ${SAMPLE_ROLE};
`;
}

/** Deterministic rows (md5-derived), so two runs produce identical data. `scale` 1 ≈ 3 MB. */
export function sampleDataSql(scale = 1): string {
  const users = 50 * scale;
  const clients = 400 * scale;
  const logs = 20_000 * scale;
  return `
INSERT INTO users (email, full_name, role, created_at, updated_at)
SELECT 'user' || g || '@practice.example', 'User ' || g,
       (ARRAY['partner','accountant','assistant','admin'])[1 + g % 4],
       timestamptz '2024-01-01 09:00:00+00' + g * interval '1 hour',
       timestamptz '2024-06-01 09:00:00+00' + g * interval '1 hour'
  FROM generate_series(1, ${users}) g;

INSERT INTO clients (company_name, company_number, vat_number, account_manager_id, risk_rating, metadata, created_at)
SELECT 'Client ' || g || ' Ltd', lpad((10000000 + g)::text, 8, '0'), 'GB' || (100000000 + g * 7),
       1 + g % ${users}, 1 + g % 5,
       jsonb_build_object('sector', (ARRAY['retail','construction','charity','tech'])[1 + g % 4], 'employees', g % 250),
       timestamptz '2024-02-01 00:00:00+00' + g * interval '37 minutes'
  FROM generate_series(1, ${clients}) g;

INSERT INTO kyc_verifications (client_id, status, document_key, checked_by, expires_on, created_at)
SELECT 1 + g % ${clients}, (ARRAY['pending','verified','rejected','expired'])[1 + g % 4]::kyc_status,
       'onboarding/' || md5(g::text) || '/passport.pdf', 1 + g % ${users},
       date '2026-01-01' + g % 700, timestamptz '2024-03-01 00:00:00+00' + g * interval '53 minutes'
  FROM generate_series(1, ${clients * 2}) g;

INSERT INTO onboarding_sessions (id, client_id, step, answers, completed, created_at)
SELECT md5('session' || g)::uuid, 1 + g % ${clients}, (ARRAY['identity','address','bank','done'])[1 + g % 4],
       jsonb_build_object('source', 'web', 'attempt', g % 3), g % 4 = 3,
       timestamptz '2024-03-15 00:00:00+00' + g * interval '41 minutes'
  FROM generate_series(1, ${clients}) g;

INSERT INTO activity_logs (user_id, client_id, action, detail, ip, created_at)
SELECT 1 + g % ${users}, 1 + g % ${clients}, (ARRAY['login','view_client','upload_document','update_kyc','export_pdf'])[1 + g % 5],
       jsonb_build_object('request_id', md5(g::text), 'duration_ms', g % 900),
       ('10.' || (g % 250) || '.' || (g % 200) || '.' || (1 + g % 254))::inet,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 minutes'
  FROM generate_series(1, ${logs}) g;

SELECT setval('invoice_number_seq', 100000 + ${clients * 3});

INSERT INTO engagement_letters (client_id, letter)
VALUES (1, lo_from_bytea(0, convert_to(repeat('Engagement letter for Client 1 Ltd. ', 200), 'UTF8')));
`;
}
