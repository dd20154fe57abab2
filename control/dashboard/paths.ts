/**
 * Where the web dashboard lives on control's admin listener
 * (docs/dashboard.md): the page and its bundled files under DASHBOARD_PATH,
 * JSON under `api/`, the live stream at `events`.
 */
export const DASHBOARD_PATH = "/dashboard/";
export const DASHBOARD_API = `${DASHBOARD_PATH}api/`;
export const DASHBOARD_EVENTS = `${DASHBOARD_PATH}events`;
