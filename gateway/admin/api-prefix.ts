/** Where the admin API lives on the management listener; every admin module mounts under it. */
export const ADMIN_API_PREFIX = '/api/v1';
