// Cameras as the API shows them to this user (it lists only those they may do something with).
import { get, enc } from "./api.js";

let list = null;
let listedAt = 0;
const details = new Map();

export async function listCameras(force = false) {
  if (force || !list || Date.now() - listedAt > 10000) {
    list = await get("/api/v1/cameras");
    listedAt = Date.now();
  }
  return list;
}

export function cachedCamera(id) {
  return (list || []).find((c) => c.id === id) || null;
}

export async function cameraDetails(id) {
  const hit = details.get(id);
  if (hit && Date.now() - hit.at < 60000) return hit.value;
  const value = await get(`/api/v1/cameras/${enc(id)}`);
  details.set(id, { at: Date.now(), value });
  return value;
}

export function groupsOf(cameras) {
  const groups = new Map();
  for (const camera of cameras) {
    for (const group of camera.groups.length ? camera.groups : ["—"]) {
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(camera);
    }
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}
