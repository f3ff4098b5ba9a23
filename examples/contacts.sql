PRAGMA foreign_keys = ON;
-- The contact directory of the Cerbos tutorial, shared by contacts-axum and
-- contacts-actix (policies in examples/policies).
CREATE TABLE user (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    department TEXT NOT NULL
);
CREATE TABLE company (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE contact (
    -- AUTOINCREMENT: a deleted contact's id is never given to a new one, so a
    -- decision about the old row can never apply to someone else's.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES user(id),
    company_id TEXT NOT NULL REFERENCES company(id),
    is_active INTEGER NOT NULL,
    marketing_opt_in INTEGER NOT NULL
);
INSERT INTO user VALUES
    ('1', 'alice', 'Alice', 'alice@cerbos.demo', 'admin', 'IT'),
    ('2', 'john', 'John', 'john@cerbos.demo', 'user', 'Sales'),
    ('3', 'sarah', 'Sarah', 'sarah@cerbos.demo', 'user', 'Sales'),
    ('4', 'geri', 'Geri', 'geri@cerbos.demo', 'user', 'Marketing');
INSERT INTO company VALUES ('1', 'Coca Cola'), ('2', 'Legal Co'), ('3', 'Pepsi Co'), ('4', 'Capri Sun');
INSERT INTO contact VALUES
    (1, 'Nick', 'Smyth', '2', '1', 1, 1),
    (2, 'Simon', 'Jaff', '2', '2', 0, 1),
    (3, 'Mary', 'Jane', '3', '3', 1, 0),
    (4, 'Christina', 'Baker', '3', '4', 0, 1),
    (5, 'Aleks', 'Kozlov', '3', '3', 1, 1);
