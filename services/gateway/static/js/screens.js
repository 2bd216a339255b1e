// The console's screens, and who gets each: the role's actions from /api/v1/console/me and the
// API modules this gateway serves. The server refuses anyway; this keeps menus honest.
const may = (me, action) => me.actions.includes(action);
const has = (me, feature) => me.features.includes(feature);

export const SCREENS = [
  { id: "wall", label: "nav.wall", allowed: (me) => may(me, "live"), load: () => import("./wall.js") },
  { id: "playback", label: "nav.playback", allowed: (me) => may(me, "playback") && has(me, "playback"), load: () => import("./playback.js") },
  { id: "alarms", label: "nav.alarms", allowed: (me) => may(me, "camera_health") && has(me, "alarms"), load: () => import("./alarms.js") },
  // The shift journal: entries for those who watch (city staff only), the counts for auditors too.
  { id: "journal", label: "nav.journal", allowed: (me) => (may(me, "live") || may(me, "audit")) && has(me, "journal") && !me.partner && me.role !== "police_nationale", load: () => import("./journal.js") },
  { id: "health", label: "nav.health", allowed: (me) => may(me, "camera_health"), load: () => import("./health.js") },
  { id: "bollards", label: "nav.bollards", allowed: (me) => (may(me, "live") || may(me, "config")) && has(me, "bollards") && !me.partner && me.role !== "police_nationale", load: () => import("./bollards.js") },
  { id: "requisitions", label: "nav.requisitions", allowed: (me) => (may(me, "export") || may(me, "register") || may(me, "sign")) && has(me, "requisitions"), load: () => import("./requisitions.js") },
  { id: "register", label: "nav.register", allowed: (me) => may(me, "register") && has(me, "register"), load: () => import("./register.js") },
  { id: "visitors", label: "nav.visitors", allowed: (me) => (may(me, "users") || may(me, "audit")) && has(me, "visitors"), load: () => import("./visitors.js") },
  { id: "citizens", label: "nav.citizens", allowed: (me) => (may(me, "citizen_requests") || may(me, "playback")) && has(me, "citizen_requests"), load: () => import("./citizens.js") },
  { id: "cameras", label: "nav.cameras", allowed: (me) => may(me, "config") && has(me, "camera_admin"), load: () => import("./admin-cameras.js") },
  { id: "masks", label: "nav.masks", allowed: (me) => may(me, "mask_admin") && has(me, "masks"), load: () => import("./masks.js") },
  { id: "users", label: "nav.users", allowed: (me) => may(me, "users"), load: () => import("./admin-users.js") },
  { id: "audit", label: "nav.audit", allowed: (me) => may(me, "audit"), load: () => import("./audit.js") },
  // The second screen of the video wall: no menu, follows the first window.
  { id: "screen2", label: "nav.screen2", hidden: true, follower: true, allowed: (me) => may(me, "live"), load: () => import("./wall.js").then((m) => ({ mount: m.mountFollower })) },
];
