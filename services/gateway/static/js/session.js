// The signed-in user as /api/v1/console/me describes them; screens ask it what to show.
export const session = {
  me: null,
  may(action) { return Boolean(this.me && this.me.actions.includes(action)); },
  has(feature) { return Boolean(this.me && this.me.features.includes(feature)); },
};
