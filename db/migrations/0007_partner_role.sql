-- Partners integrate through the playground: a signed-in role that may introspect the
-- schema in production (INTROSPECTION_ROLES) and otherwise acts as a user.
ALTER TABLE users.profiles DROP CONSTRAINT profiles_role_check;
ALTER TABLE users.profiles
    ADD CONSTRAINT profiles_role_check CHECK (role IN ('user', 'organizer', 'admin', 'partner'));
