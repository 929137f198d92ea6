from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'pi05_moe_training'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/config', sorted(glob('config/*'))),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='pi05_moe developers',
    maintainer_email='pi05-moe@example.com',
    description=(
        'Learning loop of pi05_moe: bag recording and replay, bag to dataset conversion with '
        'camera labels, training (flow + focal routing loss) and offline evaluation.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'recorder_node = pi05_moe_training.record.recorder_node:main',
        ],
    },
)
