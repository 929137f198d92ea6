from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'pi05_moe_bringup'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={PACKAGE: ['sim/assets/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', sorted(glob('launch/*'))),
        (f'share/{PACKAGE}/config', sorted(glob('config/*'))),
        (f'share/{PACKAGE}/rqt', sorted(glob('rqt/*'))),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='pi05_moe developers',
    maintainer_email='pi05-moe@example.com',
    description=(
        'Bringup of pi05_moe: node-graph description and launch files, parameter YAML, '
        'camera driver nodes (L515, wrist UVC, thermal), the simulated 3-camera robot, the '
        'tools that drive it (sim-demos, sim-eval, demo), the pi05-moe CLI and an rqt '
        'perspective.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = pi05_moe_bringup.sim_node:main',
            'pi05-moe = pi05_moe_bringup.cli:main',
            'uvc_camera_node = pi05_moe_bringup.drivers.uvc_camera_node:main',
            'thermal_camera_node = pi05_moe_bringup.drivers.thermal_camera_node:main',
            'l515_camera_node = pi05_moe_bringup.drivers.l515_camera_node:main',
        ],
    },
)
