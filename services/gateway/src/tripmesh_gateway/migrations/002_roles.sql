-- Roles: 'admin' may read and set any user's budget (GET/PUT /api/v1/costs/budget?user_id=).
-- Granted by an operator only: `python -m tripmesh_gateway grant-admin <email>` or
-- GATEWAY_ADMIN_EMAILS at start-up; never through the API.
ALTER TABLE {schema}.users
    ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin'));
