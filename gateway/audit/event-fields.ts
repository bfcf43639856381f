/**
 * The fields of a decision or alert event (gateway/audit/decision-event.schema.json, ECS names)
 * that readers of the event stream use: the SOC formats and the detection rules. Every field is
 * optional: events come from several producers (requests, statements, admin changes, alerts)
 * and readers must cope with what one of them leaves out.
 */
export interface EventFields {
  readonly [field: string]: unknown;
  readonly '@timestamp'?: string;
  readonly message?: string;
  readonly event?: { readonly id?: string; readonly kind?: string; readonly action?: string; readonly outcome?: string };
  readonly rule?: { readonly id?: string; readonly name?: string };
  readonly user?: { readonly id?: string; readonly verified?: boolean; readonly [field: string]: unknown };
  readonly organization?: { readonly id?: string };
  readonly source?: { readonly ip?: string | null; readonly port?: number | null };
  readonly http?: { readonly request?: { readonly method?: string }; readonly response?: { readonly status_code?: number } };
  readonly url?: { readonly path?: string };
  readonly ztgate?: {
    readonly decision?: string;
    readonly reasons?: readonly string[];
    readonly rule?: string | null;
    readonly policy_version?: string | null;
    readonly records?: number | null;
    readonly route?: { readonly id?: string; readonly security_level?: number; readonly classification?: string } | null;
    readonly device?: { readonly id?: string; readonly tier?: string } | null;
    readonly session?: { readonly id_digest?: string } | null;
    readonly alert?: { readonly action?: string; readonly reasons?: readonly string[] };
  };
}
