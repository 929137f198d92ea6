from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'pi05_moe_policy'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        # The checkpoints trained on the simulated robot (pi05_moe_policy.checkpoints):
        # sim_small (PI0.5, make demo) and sim_rt1 (the RT-1 baseline, docs/rt1.md).
        *((f'share/{PACKAGE}/{d}', sorted(glob(f'{d}/*')))
          for d in sorted(glob('checkpoints/*')) if glob(f'{d}/model.safetensors')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='pi05_moe developers',
    maintainer_email='pi05-moe@example.com',
    description=(
        'PI0.5 vision-language-action policy with router-gated camera fusion (camera '
        'MoE): the PyTorch model, the ROS-free runtime core and the policy + executor '
        'nodes.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'policy_node = pi05_moe_policy.nodes.policy_node:main',
            'executor_node = pi05_moe_policy.nodes.executor_node:main',
        ],
    },
)
