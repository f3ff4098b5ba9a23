-- The documents examples' database: users with their bearer tokens, and
-- documents owned by a user, in a department, maybe a draft, maybe public.
PRAGMA foreign_keys = ON;

CREATE TABLE user (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    department TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE
);

CREATE TABLE document (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES user (id),
    department TEXT NOT NULL,
    draft INTEGER NOT NULL CHECK (draft IN (0, 1)),
    public INTEGER NOT NULL CHECK (public IN (0, 1))
);

INSERT INTO user (id, name, role, department, token) VALUES
    ('1', 'alice', 'admin', 'IT', 'alice-token'),
    ('2', 'john', 'user', 'Sales', 'john-token'),
    ('3', 'sarah', 'user', 'Sales', 'sarah-token'),
    ('4', 'geri', 'user', 'Marketing', 'geri-token');

INSERT INTO document (title, owner_id, department, draft, public) VALUES
    ('Sales plan', '2', 'Sales', 0, 0),
    ('Sales plan, next year', '2', 'Sales', 1, 0),
    ('Price list', '3', 'Sales', 0, 0),
    ('Press release', '4', 'Marketing', 0, 1),
    ('Campaign', '4', 'Marketing', 1, 1),
    ('Runbook', '1', 'IT', 0, 0);
