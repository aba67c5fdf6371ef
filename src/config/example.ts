/**
 * The commented example printed by `lifeboat config example`: the first user's DR plan (an
 * accountancy platform, UK/EU only) expressed as lifeboat configuration. A test keeps it valid
 * against the schema.
 */
export const EXAMPLE_CONFIG = `# lifeboat.yaml — backup and disaster recovery for an application on PostgreSQL + S3.
# Reference plan: RTO 4 h, RPO 1 h, 30-day rolling backups, offsite copy, UK/EU storage only,
# encryption at rest and in transit. Full field reference: docs/configuration.md.
# \${VAR} is replaced by the environment variable VAR; \${VAR:-fallback} gives a default.
version: 1

# Backups go to every repository listed: a local copy for fast restores and an offsite copy.
repositories:
  local:
    type: local
    path: /var/backups/lifeboat
  offsite:
    type: s3
    # AWS London. For an S3-compatible service set its endpoint and usually pathStyle: true.
    region: eu-west-2
    bucket: acme-accountancy-backups
    prefix: lifeboat/
    # Credentials come from the environment; never write the values here.
    credentials:
      accessKeyId: \${LIFEBOAT_S3_ACCESS_KEY_ID}
      secretAccessKey: \${LIFEBOAT_S3_SECRET_ACCESS_KEY}

# Client-side encryption (age format). Backup hosts hold only the public recipient;
# the identity (private key) lives with whoever restores. Create a pair: lifeboat key generate
encryption:
  recipients:
    - \${LIFEBOAT_AGE_RECIPIENT}
  # identityFile: /etc/lifeboat/identity.txt   # only on hosts that restore or verify

compression:
  algorithm: zstd
  level: 3

databases:
  app:
    host: \${PGHOST:-127.0.0.1}
    port: 5432
    user: backup
    database: accountancy
    password: \${LIFEBOAT_DB_PASSWORD}
    sslmode: \${PGSSLMODE:-prefer}   # verify-full when the database is across a network
    format: custom
    globals: true      # roles, memberships and grants ("user roles and permissions")
    keyTables:
      - users
      - clients
      - kyc_verifications
      - onboarding_sessions
      - table: activity_logs
        timestampColumn: created_at

# Application buckets: versioning + 90-day version history (lifeboat bucket protect), a daily
# copy to a bucket in another region (lifeboat bucket sync), snapshots and restores.
buckets:
  documents:
    bucket: acme-identity-documents     # onboarding/<session>/passport.pdf, generated PDFs
    region: eu-west-2
    credentials:
      accessKeyId: \${LIFEBOAT_S3_ACCESS_KEY_ID}
      secretAccessKey: \${LIFEBOAT_S3_SECRET_ACCESS_KEY}
    noncurrentVersionDays: 90
    syncConcurrency: 16
    secondary:
      bucket: acme-identity-documents-dr
      region: eu-west-1                 # Ireland: offsite, still EU
      storageClass: STANDARD_IA

# Continuous WAL archiving + point-in-time recovery (RPO: about a minute; seconds with
# mode: stream). \`lifeboat setup wal\` prints the server settings; \`lifeboat backup base\`
# takes the physical base backups PITR starts from.
wal:
  database: app
  mode: archive            # or stream (lifeboat wal stream, over a replication slot)
  archiveTimeout: 60s
  keep: 7d                 # plus whatever retained base backups need
  spoolDir: /var/lib/lifeboat/spool/app

objectives:
  rto: 4h
  rpo: 1h

# Daily backups at 02:00 UTC kept 30 days; also keep month-ends for a year.
retention:
  keepDays: 30
  monthly: 12
`;
