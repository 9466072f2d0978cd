-- The ASP.NET Core Identity users table as EF Core's Npgsql migration creates it, plus the legacy `Activo`
-- flag the gateway's default query reads (README "SQL user store"). Two example users, both with the same
-- real ASP.NET Identity V3 hash (PBKDF2-HMAC-SHA512, 100,000 iterations, as .NET 7+ writes it) of the
-- password "my password": alice can log in, bob is inactive (Activo = false) and gets the same 401 as a
-- wrong password. EXAMPLE DATA: delete both users before the stack faces anyone.
-- tests/deploy_manifests.rs runs this file against a test database, so the example stays loadable.

CREATE TABLE "AspNetUsers" (
    "Id" text NOT NULL,
    "UserName" character varying(256) NULL,
    "NormalizedUserName" character varying(256) NULL,
    "Email" character varying(256) NULL,
    "NormalizedEmail" character varying(256) NULL,
    "EmailConfirmed" boolean NOT NULL,
    "PasswordHash" text NULL,
    "SecurityStamp" text NULL,
    "ConcurrencyStamp" text NULL,
    "PhoneNumber" text NULL,
    "PhoneNumberConfirmed" boolean NOT NULL,
    "TwoFactorEnabled" boolean NOT NULL,
    "LockoutEnd" timestamp with time zone NULL,
    "LockoutEnabled" boolean NOT NULL,
    "AccessFailedCount" integer NOT NULL,
    "Activo" boolean NULL,
    CONSTRAINT "PK_AspNetUsers" PRIMARY KEY ("Id")
);
CREATE INDEX "EmailIndex" ON "AspNetUsers" ("NormalizedEmail");
CREATE UNIQUE INDEX "UserNameIndex" ON "AspNetUsers" ("NormalizedUserName");

INSERT INTO "AspNetUsers" ("Id", "UserName", "NormalizedUserName", "Email", "NormalizedEmail",
    "EmailConfirmed", "PasswordHash", "SecurityStamp", "ConcurrencyStamp", "PhoneNumberConfirmed",
    "TwoFactorEnabled", "LockoutEnd", "LockoutEnabled", "AccessFailedCount", "Activo")
VALUES
    ('6f1c2d0e-0000-4000-8000-000000000001', 'alice', 'ALICE', 'alice@example.com', 'ALICE@EXAMPLE.COM',
     true, 'AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==',
     'EXAMPLESTAMPALICE', '6f1c2d0e-0000-4000-8000-0000000000a1', false, false, NULL, true, 0, true),
    ('6f1c2d0e-0000-4000-8000-000000000002', 'bob', 'BOB', 'bob@example.com', 'BOB@EXAMPLE.COM',
     true, 'AQAAAAIAAYagAAAAEAABAgMEBQYHCAkKCwwNDg/Q8A0WMKbtHQJQ2DHCdoEeeFBrgNlldq6vH4qX/CGqGQ==',
     'EXAMPLESTAMPBOB', '6f1c2d0e-0000-4000-8000-0000000000b2', false, false, NULL, true, 0, false);
