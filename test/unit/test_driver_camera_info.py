"""camera_info.py: calibration YAML <-> CameraInfoData <-> CameraInfo messages (no rclpy.init)."""

import numpy as np
import pytest
import yaml
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo

from pi05_moe_bringup.drivers.camera_info import (
    CalibrationError,
    CameraInfoData,
    calibration_document,
    fill_camera_info,
    from_intrinsics,
    load_calibration,
    parse_calibration,
    uncalibrated,
)

# As written by `ros2 run camera_calibration cameracalibrator` for a 640x480 camera.
CALIBRATOR_OUTPUT = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [610.2, 0.0, 318.4, 0.0, 611.9, 243.1, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.11, -0.23, 0.001, -0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [620.5, 0.0, 317.9, 0.0, 0.0, 622.0, 242.6, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def write(tmp_path, text, name='cal.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_the_calibrator_format(tmp_path):
    data = load_calibration(write(tmp_path, CALIBRATOR_OUTPUT))
    assert (data.width, data.height, data.camera_name) == (640, 480, 'narrow_stereo')
    assert data.k[0] == 610.2 and data.k[2] == 318.4 and data.k[4] == 611.9
    assert data.d == (0.11, -0.23, 0.001, -0.002, 0.0)
    assert data.p[0] == 620.5 and data.p[6] == 242.6  # P kept as given, not recomputed from K
    assert data.distortion_model == 'plumb_bob' and data.calibrated


def test_document_round_trip(tmp_path):
    data = from_intrinsics(224, 224, 193.99, 194.01, 111.5, 111.5, [0.1, 0.0, 0.0, 0.0, 0.02],
                           camera_name='wrist')
    path = write(tmp_path, yaml.safe_dump(calibration_document(data)))
    assert load_calibration(path) == data


def test_from_intrinsics_layout():
    data = from_intrinsics(640, 480, 600.0, 601.0, 320.5, 240.5)
    k = np.array(data.k).reshape(3, 3)
    p = np.array(data.p).reshape(3, 4)
    np.testing.assert_array_equal(k, [[600.0, 0, 320.5], [0, 601.0, 240.5], [0, 0, 1]])
    np.testing.assert_array_equal(p[:, :3], k)
    assert not p[:, 3].any() and data.r == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_optional_fields_get_monocular_defaults():
    doc = yaml.safe_load(CALIBRATOR_OUTPUT)
    for key in ('distortion_coefficients', 'rectification_matrix', 'projection_matrix',
                'distortion_model'):
        del doc[key]
    data = parse_calibration(doc)
    p = np.array(data.p).reshape(3, 4)
    np.testing.assert_array_equal(p[:, :3], np.array(data.k).reshape(3, 3))
    assert data.d == () and data.distortion_model == 'plumb_bob'


@pytest.mark.parametrize('edit, words', [
    (lambda d: d.pop('camera_matrix'), ['camera_matrix', 'missing']),
    (lambda d: d['camera_matrix']['data'].pop(), ['camera_matrix', '8 values', '3x3']),
    (lambda d: d.update(image_width=0), ['image_width=0']),
    (lambda d: d['projection_matrix'].update(cols=3), ['projection_matrix', '3x4']),
    (lambda d: d['distortion_coefficients'].update(data=['a']), ['distortion_coefficients']),
])
def test_bad_files_name_the_file_and_field(tmp_path, edit, words):
    doc = yaml.safe_load(CALIBRATOR_OUTPUT)
    edit(doc)
    path = write(tmp_path, yaml.safe_dump(doc))
    with pytest.raises(CalibrationError) as err:
        load_calibration(path)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(CalibrationError, match='cannot read'):
        load_calibration(tmp_path / 'nope.yaml')
    with pytest.raises(CalibrationError, match='not valid YAML'):
        load_calibration(write(tmp_path, 'camera_matrix: [1, 2'))
    with pytest.raises(CalibrationError, match='expected a mapping'):
        load_calibration(write(tmp_path, '- 1\n- 2\n'))


def test_data_validation():
    with pytest.raises(ValueError, match='k has 8 values'):
        CameraInfoData(640, 480, k=(1.0,) * 8)
    with pytest.raises(ValueError, match='positive'):
        uncalibrated(0, 480)
    info = uncalibrated(160, 120)
    assert not info.calibrated and info.matches(160, 120) and not info.matches(120, 160)


def test_fills_rclpy_and_rosbags_messages_alike():
    data = from_intrinsics(640, 480, 600.0, 601.0, 320.5, 240.5, [0.1, -0.2, 0.0, 0.0, 0.3])
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    bag_cls = typestore.types['sensor_msgs/msg/CameraInfo']
    header_cls = typestore.types['std_msgs/msg/Header']
    time_cls = typestore.types['builtin_interfaces/msg/Time']
    roi_cls = typestore.types['sensor_msgs/msg/RegionOfInterest']
    bag_msg = bag_cls(header=header_cls(stamp=time_cls(0, 0), frame_id='f'), height=0, width=0,
                      distortion_model='', d=np.zeros(0), k=np.zeros(9), r=np.zeros(9),
                      p=np.zeros(12), binning_x=0, binning_y=0,
                      roi=roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    for msg in (CameraInfo(), bag_msg):
        out = fill_camera_info(msg, data)
        assert out is msg
        assert (msg.width, msg.height, msg.distortion_model) == (640, 480, 'plumb_bob')
        np.testing.assert_array_equal(np.asarray(msg.k), data.k)
        np.testing.assert_array_equal(np.asarray(msg.d), data.d)
        np.testing.assert_array_equal(np.asarray(msg.p), data.p)
        np.testing.assert_array_equal(np.asarray(msg.r), data.r)
    # the rosbags message still serialises (field types kept)
    assert len(typestore.serialize_cdr(bag_msg, bag_cls.__msgtype__)) > 0
