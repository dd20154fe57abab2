import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { ControlService } from "../service.ts";
import { DashboardHttp } from "./http.ts";
import { DashboardViews } from "./views.ts";

export { DASHBOARD_PATH } from "./paths.ts";

export interface Dashboard {
  /** an admin listener handler: answers under `/dashboard/`, false elsewhere */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  stop(): void;
}

/** The web dashboard of a control replica (docs/dashboard.md): starts sampling its time series now. */
export function startDashboard(control: ControlService, logger: Logger): Dashboard {
  const views = new DashboardViews(control.store, control.telemetry, control.access, logger);
  const http = new DashboardHttp(views, logger);
  return {
    handle: (req, res) => http.handle(req, res),
    stop: () => {
      views.stop();
      http.close();
    },
  };
}
