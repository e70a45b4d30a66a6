"""Frigate NVR: service availability, camera status and state topics, motion, object counts, stats
(current and legacy layouts), tracked-object events, reviews and triggers.

One filter, ``<topic_prefix>/#`` (option ``topic_prefix``, default ``frigate``). Cameras are devices
named by their Frigate camera name; the NVR itself is the device named by option ``instance``
(default: the topic prefix). Read-only. See README.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import kit
from .._contract import ConfigError, Decoded, DecodeError, Driver, Event, Reading, Value
from .._schema import measures_of

__all__ = ["FrigateDriver"]

FAMILY = "cctv"
_MEASURES = ("online", "recording", "fps", "motion", "objects", "inference_ms", "uptime", "enabled", "detect",
             "cpu", "gpu")
# <cam>/<feature>/state with ON/OFF: the features that are canonical measures
_FEATURE_MEASURES = {"enabled": "enabled", "detect": "detect", "recordings": "recording"}
# <cam>/<feature>/state whose value is a number (tuning), not ON/OFF: ignored
_NUMERIC_FEATURES = frozenset({"motion_threshold", "motion_contour_area"})
# <prefix>/<name> service topics that carry nothing a supervisor measures
_IGNORED_SERVICE = frozenset({"onConnect", "restart", "camera_activity", "tracked_object_update",
                              "notifications", "audio_transcription", "model_state", "embeddings_reindex_progress",
                              "birdseye_layout"})
# <prefix>/<cam>/<name> scalar topics that are not object counts
_IGNORED_CAMERA = frozenset({"review_status", "ptz", "birdseye", "birdseye_mode", "audio"})
_KIND = re.compile(r"[a-z0-9_.:-]{1,64}")
_ROLES = {"detect": "online", "record": "recording"}
_STATUS = frozenset({"online", "offline", "disabled"})
_ACT_ON = frozenset({"new", "end"})
_FULL_SYSTEM = "frigate.full_system"
_MAX_ITEMS = 256


class FrigateDriver(Driver):
    name = "frigate"
    families = (FAMILY,)
    topics = ("frigate/#",)
    measures = {k: v for k, v in measures_of(FAMILY).items() if k[1] in _MEASURES}
    OPTIONS = frozenset({"topic_prefix", "instance"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        prefix = kit.topic_root_option(self.name, self.options, "topic_prefix", "frigate")
        instance = self.options.get("instance", prefix.replace("/", "."))
        if not isinstance(instance, str) or not kit.is_identifier(instance):
            raise ConfigError(f"driver 'frigate': instance must be an identifier, got {instance!r}")
        self._prefix = prefix + "/"
        self._instance = instance
        self.topics = (f"{prefix}/#",)  # type: ignore[misc]  # per deployment

    def decode(self, topic: str, payload: bytes) -> Decoded:
        if not topic.startswith(self._prefix):
            raise DecodeError(kit.UNKNOWN_TOPIC, f"{topic!r} is not under {self._prefix}")
        parts = topic[len(self._prefix):].split("/")
        n = len(parts)
        if n >= 2 and parts[-1] == "snapshot":
            return Decoded()  # JPEG bytes, not telemetry
        if n >= 2 and parts[-1] == "set":
            return Decoded()  # commands (ours or an operator's) echo on the subscription
        if n == 1:
            return self._service(parts[0], payload)
        if parts[0] in _IGNORED_SERVICE:
            return Decoded()
        camera = _camera(parts[0])
        if n == 2:
            return self._camera_scalar(camera, parts[1], payload)
        if n == 3 and parts[1] == "status":
            return self._status(camera, parts[2], payload)
        if n == 3 and parts[2] == "state":
            return self._feature(camera, parts[1], payload)
        return Decoded()  # per-object active counts, audio levels, PTZ and other detail topics (README)

    # ------------------------------------------------------------------ service topics

    def _service(self, name: str, payload: bytes) -> Decoded:
        if name == "available":
            state = _text(payload, "available").lower()
            if state not in ("online", "offline", "stopped"):
                if not state:
                    raise DecodeError(kit.MISSING_FIELD, "available: empty payload")
                raise DecodeError(kit.BAD_VALUE, f"available: {state[:40]!r} is not online, offline or stopped")
            reading = Reading(self._instance, FAMILY, {"online": state == "online"})
            return Decoded([reading], [Event(self._instance, FAMILY, "available", None, None, {"state": state})])
        if name == "stats":
            return self._stats(kit.parse_object(payload))
        if name == "events":
            return self._event(kit.parse_object(payload))
        if name == "reviews":
            return self._review(kit.parse_object(payload))
        if name == "triggers":
            return self._trigger(kit.parse_object(payload))
        return Decoded()  # onConnect, camera_activity, notifications...: nothing to measure

    def _stats(self, obj: dict[str, Any]) -> Decoded:
        cameras = obj.get("cameras")
        if cameras is None:  # legacy (0.12 and earlier): camera objects at the top level
            cameras = {k: v for k, v in obj.items() if isinstance(v, dict) and "camera_fps" in v}
        elif not isinstance(cameras, dict):
            raise DecodeError(kit.BAD_TYPE, "stats.cameras: expected an object keyed by camera")
        service = obj.get("service")
        if service is not None and not isinstance(service, dict):
            raise DecodeError(kit.BAD_TYPE, "stats.service: expected an object")
        service = service or {}
        ts = kit.parse_timestamp(service.get("last_updated"), "service.last_updated")
        readings: list[Reading] = []
        for name, cam in _items(cameras, "cameras"):
            camera = _camera(name)
            if not isinstance(cam, dict):
                raise DecodeError(kit.BAD_TYPE, f"cameras.{camera}: expected an object")
            values: dict[str, Value] = {}
            fps = kit.to_float(cam.get("camera_fps"), f"cameras.{camera}.camera_fps")
            if fps is not None:
                values["fps"] = kit.check_range(FAMILY, "fps", fps)
            quality = cam.get("connection_quality")
            if quality is not None and not isinstance(quality, str):
                raise DecodeError(kit.BAD_TYPE, f"cameras.{camera}.connection_quality: expected a string")
            unusable = isinstance(quality, str) and quality.strip().lower() == "unusable"
            if fps is not None or (quality or "").strip():
                values["online"] = not unusable and (fps is None or fps > 0)
            if values:
                readings.append(Reading(camera, FAMILY, values, ts))
        instance: dict[str, Value] = {}
        uptime = kit.to_float(service.get("uptime"), "service.uptime")
        if uptime is not None:
            instance["uptime"] = kit.check_range(FAMILY, "uptime", uptime)
        cpu = self._cpu(obj.get("cpu_usages"))
        if cpu is not None:
            instance["cpu"] = cpu
        if instance:
            readings.append(Reading(self._instance, FAMILY, instance, ts))
        detectors = obj.get("detectors")
        for name, det in _items(detectors, "detectors"):
            if not isinstance(det, dict):
                raise DecodeError(kit.BAD_TYPE, f"detectors.{name}: expected an object")
            ms = kit.to_float(det.get("inference_speed"), f"detectors.{name}.inference_speed")
            if ms is not None:
                value = kit.check_range(FAMILY, "inference_ms", ms)
                readings.append(Reading(self._instance, FAMILY, {"inference_ms": value}, ts, None,
                                        _channel(name, "detectors")))
        for name, gpu in _items(obj.get("gpu_usages"), "gpu_usages"):
            if not isinstance(gpu, dict):
                raise DecodeError(kit.BAD_TYPE, f"gpu_usages.{name}: expected an object")
            pct = kit.to_float_or_unknown(gpu.get("gpu"), f"gpu_usages.{name}.gpu")
            if pct is not None:
                readings.append(Reading(self._instance, FAMILY, {"gpu": kit.check_range(FAMILY, "gpu", pct)}, ts, None,
                                        _channel(name, "gpu_usages")))
        if not readings:
            raise DecodeError(kit.MISSING_FIELD, "stats has no camera, service, detector or GPU figure")
        return Decoded(readings)

    @staticmethod
    def _cpu(usages: Any) -> float | None:
        """The NVR's CPU %: ``frigate.full_system`` when reported, else the sum over its processes."""
        total: float | None = None
        for pid, usage in _items(usages, "cpu_usages"):
            if not isinstance(usage, dict):
                raise DecodeError(kit.BAD_TYPE, f"cpu_usages.{pid}: expected an object")
            pct = kit.to_float_or_unknown(usage.get("cpu"), f"cpu_usages.{pid}.cpu")
            if pct is None:
                continue
            if pid == _FULL_SYSTEM:
                return float(kit.check_range(FAMILY, "cpu", pct))
            total = (total or 0.0) + pct
        return None if total is None else float(kit.check_range(FAMILY, "cpu", round(total, 3)))

    def _event(self, obj: dict[str, Any]) -> Decoded:
        phase, after = _lifecycle(obj, "events")
        if phase not in _ACT_ON:
            return Decoded()  # many updates per object: act on new and end only
        camera = _camera(_required_str(after, "camera", "events.after"))
        label = after.get("label")
        kind = label.strip().lower() if isinstance(label, str) and label.strip() else "object"
        if _KIND.fullmatch(kind) is None:
            raise DecodeError(kit.BAD_VALUE, f"events.after.label: {kind[:40]!r} is not an event kind")
        data: dict[str, Value] = {"phase": phase}
        ident = after.get("id")
        if isinstance(ident, str) and ident:
            data["id"] = ident
        score = _score(after.get("top_score"), "events.after.top_score")
        if score is None:
            score = _score(after.get("score"), "events.after.score")
        if score is not None:
            data["score"] = score
        zones = _names(after.get("entered_zones"), "events.after.entered_zones")
        if zones is not None:
            data["zones"] = zones
        sub = after.get("sub_label")
        if isinstance(sub, list) and sub and isinstance(sub[0], str):
            sub = sub[0]
        if isinstance(sub, str) and sub:
            data["sub_label"] = sub
        for key in ("false_positive", "has_clip", "has_snapshot"):
            if isinstance(after.get(key), bool):
                data[key] = after[key]
        ts = kit.parse_timestamp(after.get("end_time" if phase == "end" else "start_time"),
                             f"events.after.{'end_time' if phase == 'end' else 'start_time'}")
        return Decoded([], [Event(camera, FAMILY, kind, ts, None, data)])

    def _review(self, obj: dict[str, Any]) -> Decoded:
        phase, after = _lifecycle(obj, "reviews")
        severity = _required_str(after, "severity", "reviews.after").strip().lower()
        if severity not in ("alert", "detection"):
            raise DecodeError(kit.BAD_VALUE, f"reviews.after.severity: {severity[:40]!r} is not alert or detection")
        if phase == "update":
            before = obj.get("before")
            upgraded = isinstance(before, dict) and str(before.get("severity", "")).lower() != severity
            if not upgraded:
                return Decoded()  # act on new, end, and a severity change (detection → alert)
        camera = _camera(_required_str(after, "camera", "reviews.after"))
        data: dict[str, Value] = {"phase": phase}
        ident = after.get("id")
        if isinstance(ident, str) and ident:
            data["id"] = ident
        details = after.get("data")
        if details is not None:
            if not isinstance(details, dict):
                raise DecodeError(kit.BAD_TYPE, "reviews.after.data: expected an object")
            for key in ("objects", "zones", "sub_labels", "audio"):
                names = _names(details.get(key), f"reviews.after.data.{key}")
                if names is not None:
                    data[key] = names
            detections = details.get("detections")
            if isinstance(detections, list):
                data["detections"] = len(detections)
        ts = kit.parse_timestamp(after.get("end_time" if phase == "end" else "start_time"), "reviews.after.time")
        return Decoded([], [Event(camera, FAMILY, f"review_{severity}", ts, None, data)])

    def _trigger(self, obj: dict[str, Any]) -> Decoded:
        camera = _camera(_required_str(obj, "camera", "triggers"))
        data: dict[str, Value] = {"name": _required_str(obj, "name", "triggers")}
        for key in ("type", "event_id"):
            if isinstance(obj.get(key), str) and obj[key]:
                data[key] = obj[key]
        score = _score(obj.get("score"), "triggers.score")
        if score is not None:
            data["score"] = score
        return Decoded([], [Event(camera, FAMILY, "trigger", None, None, data)])

    # ------------------------------------------------------------------ camera topics

    def _camera_scalar(self, camera: str, name: str, payload: bytes) -> Decoded:
        if name == "motion":
            on = kit.to_bool(_text(payload, "motion"), "motion")
            if on is None:
                raise DecodeError(kit.MISSING_FIELD, "motion: empty payload")
            return Decoded([Reading(camera, FAMILY, {"motion": on})])
        if name in _IGNORED_CAMERA:
            return Decoded()
        label = name.lower()
        if _KIND.fullmatch(label) is None:
            raise DecodeError(kit.BAD_IDENTIFIER, f"object label {name[:40]!r} is not [a-z0-9_.:-]")
        text = _text(payload, name)
        count = kit.to_int(text, name)
        if count is None:
            raise DecodeError(kit.MISSING_FIELD, f"{name}: empty object count")
        kit.check_range(FAMILY, "objects", count)
        channel = None if label == "all" else label
        return Decoded([Reading(camera, FAMILY, {"objects": count}, None, None, channel)])

    def _status(self, camera: str, role: str, payload: bytes) -> Decoded:
        state = _text(payload, f"status/{role}").lower()
        if state not in _STATUS:
            if not state:
                raise DecodeError(kit.MISSING_FIELD, f"status/{role}: empty payload")
            raise DecodeError(kit.BAD_VALUE, f"status/{role}: {state[:40]!r} is not online, offline or disabled")
        if state == "disabled":
            return Decoded([], [Event(camera, FAMILY, "disabled", None, None, {"role": role})])
        measure = _ROLES.get(role)
        if measure is None:
            return Decoded()  # audio and future roles: no canonical measure
        return Decoded([Reading(camera, FAMILY, {measure: state == "online"})])

    def _feature(self, camera: str, feature: str, payload: bytes) -> Decoded:
        if feature in _NUMERIC_FEATURES:
            return Decoded()
        on = kit.to_bool(_text(payload, f"{feature}/state"), f"{feature}/state")
        if on is None:
            raise DecodeError(kit.MISSING_FIELD, f"{feature}/state: empty payload")
        measure = _FEATURE_MEASURES.get(feature)
        if measure is not None:
            return Decoded([Reading(camera, FAMILY, {measure: on})])
        kind = feature.lower()
        if _KIND.fullmatch(kind) is None:
            raise DecodeError(kit.BAD_IDENTIFIER, f"feature {feature[:40]!r} is not [a-z0-9_.:-]")
        return Decoded([], [Event(camera, FAMILY, "feature", None, None, {"feature": kind, "on": on})])


# ---------------------------------------------------------------------- helpers


def _camera(name: str) -> str:
    if not kit.is_identifier(name):
        raise DecodeError(kit.BAD_IDENTIFIER, f"camera {name[:40]!r} is not an identifier ([A-Za-z0-9_.:-]+)")
    return name


def _channel(name: str, where: str) -> str:
    if not kit.is_identifier(name):
        raise DecodeError(kit.BAD_IDENTIFIER, f"{where}: {name[:40]!r} is not an identifier")
    return name


def _items(block: Any, where: str) -> list[tuple[str, Any]]:
    if block is None:
        return []
    if not isinstance(block, dict):
        raise DecodeError(kit.BAD_TYPE, f"{where}: expected an object")
    if len(block) > _MAX_ITEMS:
        raise DecodeError(kit.BAD_VALUE, f"{where}: more than {_MAX_ITEMS} entries")
    return list(block.items())


def _text(payload: bytes, key: str) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DecodeError(kit.BAD_VALUE, f"{key}: payload is not UTF-8 text") from None


def _lifecycle(obj: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    phase = obj.get("type")
    if not isinstance(phase, str) or phase.strip().lower() not in ("new", "update", "end"):
        if phase is None or phase == "":
            raise DecodeError(kit.MISSING_FIELD, f"{where}: no type (new, update, end)")
        raise DecodeError(kit.BAD_VALUE, f"{where}.type: {str(phase)[:40]!r} is not new, update or end")
    after = obj.get("after")
    if after is None:
        raise DecodeError(kit.MISSING_FIELD, f"{where}: no after")
    if not isinstance(after, dict):
        raise DecodeError(kit.BAD_TYPE, f"{where}.after: expected an object")
    return phase.strip().lower(), after


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None or value == "":
        raise DecodeError(kit.MISSING_FIELD, f"{where}.{key} is required")
    if not isinstance(value, str):
        raise DecodeError(kit.BAD_TYPE, f"{where}.{key}: expected a string")
    return value


def _score(raw: Any, key: str) -> float | None:
    score = kit.to_float(raw, key)
    if score is not None and not 0.0 <= score <= 1.0:
        raise DecodeError(kit.OUT_OF_RANGE, f"{key}: {score!r} is outside 0..1")
    return score


def _names(raw: Any, key: str) -> str | None:
    """A list of names as one comma-separated string (event data holds scalars); empty → ``None``."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise DecodeError(kit.BAD_TYPE, f"{key}: expected a list of names")
    return ",".join(raw) or None
